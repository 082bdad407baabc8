import FerryCore
import GRDB
import GRDBSQLite

/// Binds `Value`s straight onto a prepared statement and steps it.
///
/// GRDB's `StatementArguments` boxes every value through a generic conversion; on the apply
/// hot path that was 15% of the time per row, so the few statements run once per applied
/// row bind through the C API (GRDB exposes `sqliteStatement` for exactly this).
let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

extension Statement {
    func bind(_ values: [Value], from start: Int32 = 1) throws {
        let s = sqliteStatement
        var i = start
        for v in values {
            let rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(s, i)
            case .integer(let n): rc = sqlite3_bind_int64(s, i, n)
            case .real(let d): rc = sqlite3_bind_double(s, i, d)
            case .text(let t): rc = sqlite3_bind_text(s, i, t, -1, transient)
            case .blob(let b):
                rc = b.withUnsafeBytes { sqlite3_bind_blob(s, i, $0.baseAddress, Int32($0.count), transient) }
            }
            guard rc == SQLITE_OK else { throw failure(rc) }
            i += 1
        }
    }

    func bindBlob(_ bytes: [UInt8], at i: Int32) throws {
        let rc = bytes.withUnsafeBytes { sqlite3_bind_blob(sqliteStatement, i, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32($0.count), transient) }
        guard rc == SQLITE_OK else { throw failure(rc) }
    }

    /// Resets, binds `values` and runs the statement to completion.
    func run(_ values: [Value]) throws {
        sqlite3_reset(sqliteStatement)
        try bind(values)
        let rc = sqlite3_step(sqliteStatement)
        defer { sqlite3_reset(sqliteStatement) }
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw failure(rc) }
    }

    func failure(_ rc: Int32) -> DatabaseError {
        let db = sqlite3_db_handle(sqliteStatement)
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "SQLite error \(rc)"
        return DatabaseError(resultCode: ResultCode(rawValue: sqlite3_extended_errcode(db)), message: message, sql: sql)
    }

    func columnValue(_ i: Int32) -> Value {
        let s = sqliteStatement
        switch sqlite3_column_type(s, i) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(s, i))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(s, i))
        case SQLITE_TEXT:
            // By length, not up to the first NUL byte: text is read back exactly as stored.
            let n = Int(sqlite3_column_bytes(s, i))
            guard n > 0, let p = sqlite3_column_text(s, i) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self))
        case SQLITE_BLOB:
            let n = Int(sqlite3_column_bytes(s, i))
            guard n > 0, let p = sqlite3_column_blob(s, i) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: p, count: n)))
        default: return .null
        }
    }

    func columnBytes(_ i: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(sqliteStatement, i))
        guard n > 0, let p = sqlite3_column_blob(sqliteStatement, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    /// Resets, binds and steps once: true when a row is available to read with `columnValue`.
    func firstRow(_ values: [Value], blobs: [(Int32, [UInt8])] = []) throws -> Bool {
        sqlite3_reset(sqliteStatement)
        try bind(values)
        for (i, b) in blobs { try bindBlob(b, at: i) }
        let rc = sqlite3_step(sqliteStatement)
        if rc == SQLITE_ROW { return true }
        sqlite3_reset(sqliteStatement)
        guard rc == SQLITE_DONE else { throw failure(rc) }
        return false
    }
}
