/// A text compared and hashed by its UTF-8 bytes.
///
/// Swift's `String ==` is canonical equivalence: `é` and `e` + U+0301 are equal. Where the
/// bytes matter (a pattern ICU compiles code point by code point, a name a filter matches, a
/// value read back as written), keys must not merge such texts: every cache, memo and interning
/// table keyed by text uses this instead of `String`.
struct UTF8Key: Hashable, Sendable {
    let text: String

    init(_ text: String) { self.text = text }

    static func == (a: UTF8Key, b: UTF8Key) -> Bool { a.text.utf8.elementsEqual(b.text.utf8) }

    func hash(into hasher: inout Hasher) {
        hasher.combine(text.utf8.count)
        var copy = text
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
