#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A text compared and hashed by its UTF-8 bytes.
///
/// Swift's `String ==` is canonical equivalence: `é` and `e` + U+0301 are equal. Where the
/// bytes matter (a pattern ICU compiles code point by code point, a name a filter matches, a
/// value read back as written), keys must not merge such texts: every cache, memo and interning
/// table keyed by text uses this instead of `String`.
struct UTF8Key: Hashable, Sendable {
    let text: String

    init(_ text: String) { self.text = text }

    static func == (a: UTF8Key, b: UTF8Key) -> Bool { UTF8Bytes.equal(a.text, b.text) }

    func hash(into hasher: inout Hasher) {
        hasher.combine(text.utf8.count)
        UTF8Bytes.with(text) { hasher.combine(bytes: $0) }
    }
}

/// Byte comparisons of UTF-8 texts through `memcmp`: the generic `elementsEqual` and
/// `lexicographicallyPrecedes` over `UTF8View` went byte by byte through index arithmetic, and
/// took about 10 % of a 100,000-mailbox evaluation (`bench parse`, perf).
enum UTF8Bytes {
    /// Whether `a` and `b` hold the same bytes.
    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return true }
        return memcmp(pa, pb, a.count) == 0
    }

    /// Whether `a` comes before `b` in byte order (a proper prefix first), as
    /// `a.lexicographicallyPrecedes(b)` over bytes.
    static func precedes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let common = min(a.count, b.count)
        if common > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let order = memcmp(pa, pb, common)
            if order != 0 { return order < 0 }
        }
        return a.count < b.count
    }

    /// Calls `body` with `text`'s UTF-8 bytes (no copy for a native string).
    static func with<R>(_ text: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = text.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return result }
        var copy = text
        return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    /// Whether two texts have the same UTF-8 bytes (not canonical equivalence).
    static func equal(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        return with(a) { pa in with(b) { pb in equal(pa, pb) } }
    }

    /// Whether `text`'s UTF-8 bytes are `bytes`.
    static func equal(_ text: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard text.utf8.count == bytes.count else { return false }
        return with(text) { equal($0, bytes) }
    }

    /// Byte order of two texts, as `a.utf8.lexicographicallyPrecedes(b.utf8)`.
    static func precedes(_ a: String, _ b: String) -> Bool {
        with(a) { pa in with(b) { pb in precedes(pa, pb) } }
    }
}
