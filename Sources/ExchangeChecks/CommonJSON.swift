/// The common form of a check request read without `JSONDecoder` (issue 11, item 3: decoding
/// through `JSONDecoder`'s generic containers was the largest single cost of a warm worker).
///
/// It reads only a strict subset of JSON whose tree is certain to be what `JSONDecoder` gives
/// (`JSONValue.init(from:)`), and answers nil for anything else, which then goes through
/// `JSONDecoder` as before. So it decides nothing on its own: every refusal, and every document
/// outside the subset, is `JSONDecoder`'s. The subset:
/// - an object at the top, ASCII whitespace around values;
/// - strings of valid UTF-8 without escapes or control characters;
/// - integers of at most 18 digits, not `-0` (the decoder writes them as `String(Int64)`);
/// - `true`, `false`, `null`;
/// - at most `maxDepth` nested arrays and objects, every object's keys distinct.
///
/// `JSONValueOrderTests/commonSubsetMatchesDecoder` compares the two on generated documents.
enum CommonJSON {
    /// Nesting deeper than this is left to the decoder (recursion here is bounded by it).
    static let maxDepth = 32

    /// The tree of `bytes` when they are in the common subset; nil otherwise.
    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        bytes.withUnsafeBufferPointer { buffer -> JSONValue? in
            var reader = Reader(bytes: buffer)
            reader.skipSpace()
            guard reader.peek == UInt8(ascii: "{"), let value = reader.value(depth: 0) else { return nil }
            reader.skipSpace()
            return reader.atEnd ? value : nil
        }
    }

    struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        var atEnd: Bool { i >= bytes.count }
        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpace() {
            while i < bytes.count {
                switch bytes[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) -> JSONValue? {
            guard let b = peek else { return nil }
            switch b {
            case UInt8(ascii: "{"):
                guard depth < CommonJSON.maxDepth else { return nil }
                i += 1
                var object: [String: JSONValue] = [:]
                skipSpace()
                if peek == UInt8(ascii: "}") {
                    i += 1
                    return .object(object)
                }
                while true {
                    skipSpace()
                    guard let key = string() else { return nil }
                    skipSpace()
                    guard peek == UInt8(ascii: ":") else { return nil }
                    i += 1
                    skipSpace()
                    guard let v = value(depth: depth + 1) else { return nil }
                    // A key twice: the decoder's rules (and the refusal) apply.
                    guard object.updateValue(v, forKey: key) == nil else { return nil }
                    skipSpace()
                    switch peek {
                    case UInt8(ascii: ",")?: i += 1
                    case UInt8(ascii: "}")?:
                        i += 1
                        return .object(object)
                    default: return nil
                    }
                }
            case UInt8(ascii: "["):
                guard depth < CommonJSON.maxDepth else { return nil }
                i += 1
                var array: [JSONValue] = []
                skipSpace()
                if peek == UInt8(ascii: "]") {
                    i += 1
                    return .array(array)
                }
                while true {
                    skipSpace()
                    guard let v = value(depth: depth + 1) else { return nil }
                    array.append(v)
                    skipSpace()
                    switch peek {
                    case UInt8(ascii: ",")?: i += 1
                    case UInt8(ascii: "]")?:
                        i += 1
                        return .array(array)
                    default: return nil
                    }
                }
            case UInt8(ascii: "\""):
                return string().map { .string($0) }
            case UInt8(ascii: "t"):
                return literal("true", .bool(true))
            case UInt8(ascii: "f"):
                return literal("false", .bool(false))
            case UInt8(ascii: "n"):
                return literal("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return integer()
            default:
                return nil
            }
        }

        mutating func literal(_ word: StaticString, _ v: JSONValue) -> JSONValue? {
            let n = word.utf8CodeUnitCount
            guard bytes.count - i >= n else { return nil }
            for k in 0..<n where bytes[i + k] != word.utf8Start[k] { return nil }
            i += n
            return v
        }

        /// `-?(0|[1-9][0-9]{0,17})` not followed by `.`, `e` or `E`, and not `-0`.
        mutating func integer() -> JSONValue? {
            let start = i
            if peek == UInt8(ascii: "-") { i += 1 }
            let digitsStart = i
            while let b = peek, b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") { i += 1 }
            let digits = i - digitsStart
            guard digits >= 1, digits <= 18 else { return nil }
            if bytes[digitsStart] == UInt8(ascii: "0") {
                // "0" alone; "01" is not JSON and "-0" is written "0" by the decoder.
                guard digits == 1, digitsStart == start else { return nil }
            }
            if let b = peek, b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") { return nil }
            return .number(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
        }

        /// A string without escapes or control characters, of valid UTF-8.
        mutating func string() -> String? {
            guard peek == UInt8(ascii: "\"") else { return nil }
            i += 1
            let start = i
            var ascii = true
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\"") {
                    let raw = UnsafeBufferPointer(rebasing: bytes[start..<i])
                    i += 1
                    return ascii ? String(decoding: raw, as: UTF8.self) : String(validating: raw, as: UTF8.self)
                }
                if b < 0x20 || b == UInt8(ascii: "\\") { return nil }
                if b >= 0x80 { ascii = false }
                i += 1
            }
            return nil
        }
    }
}
