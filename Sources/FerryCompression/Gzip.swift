import CZlib

/// gzip (RFC 1952) over the system zlib, the one content encoding Ferry negotiates.
///
/// Two calls of zlib wrapped by hand: compress-nio would do it too, but over NIO buffers,
/// and the node's sync path has no other use for NIO.
public enum Gzip {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    public static func compress(_ input: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        var stream = z_stream()
        guard ferry_deflate_init_gzip(&stream, level) == Z_OK else { throw Failure(description: "zlib deflate init failed") }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 32)
        var input = input
        let status: Int32 = input.withUnsafeMutableBufferPointer { inp in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = inp.baseAddress
                stream.avail_in = UInt32(inp.count)
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw Failure(description: "zlib deflate failed (\(status))") }
        output.removeLast(Int(stream.avail_out))
        return output
    }

    /// Decompresses gzip data, refusing output beyond `maxBytes` (a compressed bomb).
    public static func decompress(_ input: [UInt8], maxBytes: Int) throws -> [UInt8] {
        var stream = z_stream()
        guard ferry_inflate_init_gzip(&stream) == Z_OK else { throw Failure(description: "zlib inflate init failed") }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        // Never inflate more than one byte past the limit, however small the limit.
        var chunk = [UInt8](repeating: 0, count: min(64 * 1024, max(maxBytes, 0) + 1))
        var input = input
        var status: Int32 = Z_OK
        try input.withUnsafeMutableBufferPointer { inp in
            stream.next_in = inp.baseAddress
            stream.avail_in = UInt32(inp.count)
            repeat {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                guard status == Z_OK || status == Z_STREAM_END else {
                    throw Failure(description: "gzip data is damaged (zlib status \(status))")
                }
                output.append(contentsOf: chunk[0..<produced])
                guard output.count <= maxBytes else {
                    throw Failure(description: "gzip data expands beyond \(maxBytes) bytes")
                }
                if produced == 0 && stream.avail_in == 0 && status != Z_STREAM_END {
                    throw Failure(description: "gzip data ends early")
                }
            } while status != Z_STREAM_END
        }
        return output
    }
}
