/// SplitMix64: a small, fast generator whose whole output follows from its seed.
///
/// Written here rather than borrowed because the sample must come out identical on every
/// run and toolchain: the bounded draws below use a fixed multiply-shift reduction instead
/// of the standard library's `random(in:using:)`, whose algorithm is not promised to stay
/// the same.
struct SampleRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// A generator for one named part of the sample (a unit's roster, one member's study in
    /// one month, …), so that part can be regenerated on its own without replaying the rest.
    init(_ parts: UInt64...) { state = Self.mix(parts) }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.scramble(state)
    }

    static func scramble(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func mix(_ parts: [UInt64]) -> UInt64 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3
        for p in parts { h = scramble(h &+ 0x9E37_79B9_7F4A_7C15 ^ p) }
        return h
    }

    /// A number in `0..<n` (n > 0); the bias is below 2⁻³² for any n the sample uses.
    mutating func below(_ n: Int) -> Int {
        precondition(n > 0, "SampleRandom.below needs a positive bound")
        return Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.upperBound - range.lowerBound + 1)
    }

    /// A number in `0..<1` with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    mutating func chance(_ p: Double) -> Bool { unit() < p }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    /// An index into `weights`, each chosen in proportion to its weight.
    mutating func weighted(_ weights: [Int]) -> Int {
        var r = below(weights.reduce(0, +))
        for (i, w) in weights.enumerated() {
            if r < w { return i }
            r -= w
        }
        return weights.count - 1
    }

    mutating func shuffle<T>(_ items: inout [T]) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) {
            items.swapAt(i, below(i + 1))
        }
    }
}

/// Parts of the sample, each drawn from its own generator (the first key after the seed).
enum SampleStream: UInt64 {
    case tree = 1
    case courses, directives, roster, meetings, monthly, study, service, response, day
}

/// FNV-1a over UTF-8: the same for a string in every process (Swift's `Hasher` is seeded
/// per process, so it cannot key a reproducible sample).
func stableHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 {
        h ^= UInt64(b)
        h &*= 0x0000_0100_0000_01B3
    }
    return h
}

/// `n` in decimal, zero-padded on the left to `width` digits.
func padded(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}
