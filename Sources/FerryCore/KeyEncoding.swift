/// The canonical byte form of a primary key (its values in the changeset value encoding),
/// used to name a row in sync metadata independently of the key's column types.
public enum KeyEncoding {
    public static func encode(_ key: [Value]) -> [UInt8] {
        var w = ByteWriter(capacity: 32)
        for v in key { ChangesetCodec.writeValue(v, &w) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(CoreError) -> [Value] {
        var r = ByteReader(bytes)
        var out: [Value] = []
        while !r.isAtEnd { out.append(try ChangesetCodec.readValue("key", &r)) }
        return out
    }
}
