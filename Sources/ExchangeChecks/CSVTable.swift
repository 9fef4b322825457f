/// A strict reader for the CSV reports Microsoft Graph serves.
///
/// Graph reports are UTF-8 with a BOM, CRLF line ends, a header line, and RFC 4180 quoting.
/// Columns drift over time, so they are looked up by header *name*; extra columns are ignored.
/// Unlike the Centreon plugin (which silently stops at the first bad row), anything that is not
/// a well-formed report is rejected with a precise error: a check must never report numbers
/// computed from a broken body.
///
/// The scanner works on bytes and only materialises `String`s for the columns the caller asked
/// for, so a 100,000-row report parses without allocating a string per field.
public struct CSVTable: Sendable {
    /// The header names, in file order.
    public let header: [String]
    /// For each data row, the requested fields in the order of `columns` passed to `parse`.
    public let rows: [[String]]

    /// Builds a table directly from header names and rows, without parsing or validation.
    public init(header: [String], rows: [[String]]) {
        self.header = header
        self.rows = rows
    }

    /// Parses `bytes` and extracts `columns` (header names) from every row.
    /// - Throws: `CSVError` describing the first problem found.
    public static func parse(_ bytes: [UInt8], columns: [String]) throws(CSVError) -> CSVTable {
        try bytes.withUnsafeBufferPointer { buffer throws(CSVError) in
            try parse(UnsafeRawBufferPointer(buffer), columns: columns)
        }
    }

    /// Parses a body in raw memory (the work behind `parse(_:columns:)`, without a copy). A leading
    /// UTF-8 BOM is skipped; header names are trimmed of spaces and tabs, and a repeated name
    /// resolves to its first column; blank lines are skipped; every other line must have the
    /// header's field count, and the last one must end with a line break.
    /// - Throws: `CSVError` describing the first problem found.
    public static func parse(_ bytes: UnsafeRawBufferPointer, columns: [String]) throws(CSVError) -> CSVTable {
        var start = 0
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { start = 3 }

        var scanner = try Scanner(body: bytes, from: start, columns: columns)
        var rows: [[String]] = []
        var sink = StringSink(slots: columns.count)
        while try scanner.nextRow(into: &sink) { rows.append(sink.fields) }
        return CSVTable(header: scanner.header, rows: rows)
    }

    /// The kept fields of one row as bytes, for `scanRows` (valid during its callback only).
    struct RowBytes {
        fileprivate let body: UnsafeRawBufferPointer
        fileprivate let scratch: UnsafeRawBufferPointer
        fileprivate let ranges: [RangeSink.Field]

        /// The field in `slot` (the position of its column in `columns`) as read: unquoted
        /// fields as in the body, quoted ones with their quotes and doubled quotes undone.
        func bytes(_ slot: Int) -> UnsafeRawBufferPointer {
            let f = ranges[slot]
            return UnsafeRawBufferPointer(rebasing: (f.quoted ? scratch : body)[f.start..<(f.start + f.count)])
        }

        /// The field as the `String` that `parse` makes of it (invalid UTF-8 repaired).
        func string(_ slot: Int) -> String { String(decoding: bytes(slot), as: UTF8.self) }
    }

    /// `parse` without a `String` per field: the same checks and errors, each data row handed to
    /// `row` (with its 0-based index) as bytes. For the snapshot builders, which keep bytes.
    /// Errors come in the order of `parse` followed by a pass over its rows: a CSV error anywhere
    /// in the body first, then the first row that `row` refused (after a refusal the rest of the
    /// body is only scanned).
    static func scanRows<E: Error>(
        _ body: [UInt8], columns: [String], _ row: (RowBytes, Int) throws(E) -> Void
    ) throws(ScanError<E>) {
        try body.withUnsafeBufferPointer { buffer throws(ScanError<E>) in
            let bytes = UnsafeRawBufferPointer(buffer)
            var start = 0
            if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { start = 3 }
            var scanner: Scanner
            do throws(CSVError) { scanner = try Scanner(body: bytes, from: start, columns: columns) } catch { throw .csv(error) }
            var sink = RangeSink(slots: columns.count)
            var index = 0
            var refused: E? = nil
            while true {
                let more: Bool
                do throws(CSVError) { more = try scanner.nextRow(into: &sink) } catch { throw .csv(error) }
                guard more else { break }
                if refused != nil { continue }
                let fields = sink
                do throws(E) {
                    try fields.scratch.withUnsafeBufferPointer { scratch throws(E) in
                        try row(RowBytes(body: bytes, scratch: UnsafeRawBufferPointer(scratch), ranges: fields.fields), index)
                    }
                } catch { refused = error }
                index += 1
            }
            if let refused { throw .row(refused) }
        }
    }

    /// Why `scanRows` stopped: the body is not a well-formed report, or the row callback threw.
    enum ScanError<E: Error>: Error {
        case csv(CSVError)
        case row(E)
    }

    /// Where the scanner puts a record's kept fields.
    protocol FieldSink {
        /// A new record begins.
        mutating func begin()
        /// An unquoted field: `body[range]`; `slot` is its column's slot, or `Int.max` when
        /// every field is kept in order (the header).
        mutating func unquoted(_ slot: Int, _ body: UnsafeRawBufferPointer, _ range: Range<Int>)
        /// A quoted field, its quotes and doubled quotes undone.
        mutating func quoted(_ slot: Int, _ bytes: [UInt8])
    }

    /// Fields as Strings (what `parse` returns).
    struct StringSink: FieldSink {
        let slots: Int?
        var fields: [String] = []

        /// `slots` fields per record, by slot; nil: every field, in order.
        init(slots: Int?) { self.slots = slots }

        mutating func begin() { fields = slots.map { [String](repeating: "", count: $0) } ?? [] }
        mutating func unquoted(_ slot: Int, _ body: UnsafeRawBufferPointer, _ range: Range<Int>) {
            put(slot, String(decoding: UnsafeRawBufferPointer(rebasing: body[range]), as: UTF8.self))
        }
        mutating func quoted(_ slot: Int, _ bytes: [UInt8]) { put(slot, String(decoding: bytes, as: UTF8.self)) }
        private mutating func put(_ slot: Int, _ value: String) {
            if slots == nil { fields.append(value) } else { fields[slot] = value }
        }
    }

    /// Fields as byte ranges: of the body, or of `scratch` for quoted fields.
    struct RangeSink: FieldSink {
        struct Field {
            var start = 0
            var count = 0
            var quoted = false
        }
        var fields: [Field]
        var scratch: [UInt8] = []

        init(slots: Int) { fields = [Field](repeating: Field(), count: slots) }

        mutating func begin() {
            for i in fields.indices { fields[i] = Field() }
            scratch.removeAll(keepingCapacity: true)
        }
        mutating func unquoted(_ slot: Int, _ body: UnsafeRawBufferPointer, _ range: Range<Int>) {
            fields[slot] = Field(start: range.lowerBound, count: range.count, quoted: false)
        }
        mutating func quoted(_ slot: Int, _ bytes: [UInt8]) {
            fields[slot] = Field(start: scratch.count, count: bytes.count, quoted: true)
            scratch.append(contentsOf: bytes)
        }
    }

    /// Recognises bodies that are clearly not a CSV report, to give a useful message.
    fileprivate static func rejectNonCSV(_ bytes: UnsafeRawBufferPointer, from start: Int) throws(CSVError) {
        var i = start
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0D || bytes[i] == 0x0A { i += 1 }
        if i == bytes.count { throw .empty }
        switch bytes[i] {
        case UInt8(ascii: "<"): throw .notCSV("an HTML or XML document")
        case UInt8(ascii: "{"), UInt8(ascii: "["): throw .notCSV("a JSON document")
        default: break
        }
        // Binary data: NUL bytes or invalid UTF-8 in the first KiB. The window ends on an ASCII
        // byte so that a multi-byte character cut by the window is not mistaken for garbage.
        var probeEnd = min(bytes.count, start + 1024)
        while probeEnd > start, probeEnd < bytes.count, bytes[probeEnd - 1] >= 0x80 { probeEnd -= 1 }
        let probe = UnsafeRawBufferPointer(rebasing: bytes[start..<probeEnd])
        if probe.contains(0) { throw .notCSV("binary data") }
        if String(validating: probe, as: UTF8.self) == nil { throw .notCSV("binary data (not UTF-8 text)") }
    }

    struct Record {
        var fieldCount: Int
        var line: Int
        var terminated: Bool
        var isBlankLine: Bool
    }

    /// Byte-level RFC 4180 scanner.
    struct Scanner {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        var line = 1
        /// The header names, trimmed (set by `init(body:from:columns:)`).
        private(set) var header: [String] = []
        /// Per file column: the slot it is kept in, or -1.
        private var slotOf: [Int] = []

        init(bytes: UnsafeRawBufferPointer, position: Int) {
            self.bytes = bytes
            self.position = position
        }

        /// A scanner past the header of a body (after a BOM, which `parse` skips), keeping
        /// `columns`: checks that the body looks like CSV and that the header names every column.
        init(body bytes: UnsafeRawBufferPointer, from start: Int, columns: [String]) throws(CSVError) {
            try CSVTable.rejectNonCSV(bytes, from: start)
            self.init(bytes: bytes, position: start)
            var names = StringSink(slots: nil)
            guard try nextRecord(keep: nil, into: &names) != nil else { throw .empty }
            header = names.fields.map { $0.trimmingASCIIWhitespace() }
            if header.count == 1, header[0].isEmpty { throw .empty }

            var indexOf: [String: Int] = [:]
            for (i, name) in header.enumerated() where indexOf[name] == nil { indexOf[name] = i }
            let missing = columns.filter { indexOf[$0] == nil }
            if !missing.isEmpty { throw .missingColumns(missing, found: header) }

            // Map file column index -> output slot.
            slotOf = [Int](repeating: -1, count: header.count)
            for (slot, name) in columns.enumerated() {
                if let i = indexOf[name] { slotOf[i] = slot }
            }
        }

        /// Reads the next data row into `sink`, skipping blank lines; false at the end. Throws on
        /// a row whose field count is not the header's, or that has no line end.
        mutating func nextRow<S: FieldSink>(into sink: inout S) throws(CSVError) -> Bool {
            while let record = try nextRecord(keep: slotOf, into: &sink) {
                if record.fieldCount == 1, record.isBlankLine { continue }  // tolerate blank lines
                guard record.fieldCount == header.count else {
                    throw .wrongFieldCount(line: record.line, found: record.fieldCount, expected: header.count)
                }
                guard record.terminated else { throw .truncated(line: record.line) }
                return true
            }
            return false
        }

        /// Reads one record into `sink`. `keep` = slot per column index selects which fields are
        /// kept; nil keeps every field (used for the header).
        mutating func nextRecord<S: FieldSink>(keep: [Int]?, into sink: inout S) throws(CSVError) -> Record? {
            if position >= bytes.count { return nil }
            let startLine = line
            sink.begin()
            var fieldIndex = 0
            var blank = true
            while true {
                // One field.
                let wanted: Int  // slot, or -1 when the field is not needed
                if let keep {
                    wanted = fieldIndex < keep.count ? keep[fieldIndex] : -1
                } else {
                    wanted = Int.max
                }
                if position < bytes.count, bytes[position] == UInt8(ascii: "\"") {
                    blank = false
                    let quoteLine = line
                    position += 1
                    var chunk: [UInt8] = []
                    var closed = false
                    var segmentStart = position
                    while position < bytes.count {
                        // Straight to the next quote or line end (line ends are counted).
                        position = Self.nextQuoteOrLineFeed(bytes, from: position)
                        guard position < bytes.count else { break }
                        let b = bytes[position]
                        if b == UInt8(ascii: "\"") {
                            if position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "\"") {
                                if wanted >= 0 { chunk.append(contentsOf: bytes[segmentStart...position]) }
                                position += 2
                                segmentStart = position
                                continue
                            }
                            if wanted >= 0 { chunk.append(contentsOf: bytes[segmentStart..<position]) }
                            position += 1
                            closed = true
                            break
                        }
                        if b == 0x0A { line += 1 }
                        position += 1
                    }
                    if !closed { throw .unterminatedQuote(line: quoteLine) }
                    // After the closing quote only a separator or a line end may follow.
                    if position < bytes.count {
                        let b = bytes[position]
                        if b != UInt8(ascii: ","), b != 0x0A, b != 0x0D {
                            // A quoted field that ran over line ends and then hits text is almost
                            // always a quote that was never closed on its first line.
                            if line > quoteLine { throw .unterminatedQuote(line: quoteLine) }
                            throw .textAfterQuote(line: line)
                        }
                    }
                    if wanted >= 0 { sink.quoted(wanted, chunk) }
                } else {
                    let fieldStart = position
                    // Straight to the next separator, line end or (refused) quote.
                    position = Self.nextSpecial(bytes, from: position)
                    if position < bytes.count, bytes[position] == UInt8(ascii: "\"") { throw .quoteInUnquotedField(line: line) }
                    if position > fieldStart { blank = false }
                    if wanted >= 0 { sink.unquoted(wanted, bytes, fieldStart..<position) }
                }
                fieldIndex += 1
                // Separator or end of record.
                if position >= bytes.count {
                    return Record(fieldCount: fieldIndex, line: startLine, terminated: false, isBlankLine: blank)
                }
                let b = bytes[position]
                if b == UInt8(ascii: ",") {
                    blank = false
                    position += 1
                    continue
                }
                if b == 0x0D {
                    position += 1
                    if position < bytes.count, bytes[position] == 0x0A { position += 1 }
                } else {
                    position += 1  // LF
                }
                line += 1
                return Record(fieldCount: fieldIndex, line: startLine, terminated: true, isBlankLine: blank)
            }
        }
    }
}

extension CSVTable.Scanner {
    /// Bytes of a 64-bit word that equal `byte` have their high bit set in the result; others
    /// (and the bytes after a match, which the callers never look at) may too, but never a
    /// byte before the first match (the classic "has zero byte" test, word-at-a-time).
    @inline(__always)
    private static func matches(_ word: UInt64, _ byte: UInt8) -> UInt64 {
        let x = word ^ (0x0101_0101_0101_0101 &* UInt64(byte))
        return (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080
    }

    /// The first index at or after `start` holding `,`, LF, CR or `"`, or `bytes.count`: 8 bytes
    /// per step (a field of a 17.5 MB report is mostly ordinary bytes; byte by byte with four
    /// comparisons, the scan ran at 120–200 MB/s). Swift's `SIMD16` compares were tried first
    /// and were 8 times slower than the byte loop (not vectorised).
    static func nextSpecial(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        first(of: (0x2C, 0x0A, 0x0D, 0x22), in: bytes, from: start)
    }

    /// The first index at or after `start` holding `"` or LF, or `bytes.count` (inside quotes).
    static func nextQuoteOrLineFeed(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        first(of: (0x22, 0x0A, 0x22, 0x0A), in: bytes, from: start)
    }

    /// The first index at or after `start` holding one of `targets`, or `bytes.count`.
    @inline(__always)
    private static func first(of targets: (UInt8, UInt8, UInt8, UInt8), in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return bytes.count }
        let end = bytes.count
        var i = start
        while end - i >= 8 {
            let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let hit = matches(word, targets.0) | matches(word, targets.1) | matches(word, targets.2) | matches(word, targets.3)
            if hit != 0 { return i + hit.trailingZeroBitCount / 8 }
            i += 8
        }
        while i < end {
            let b = base.load(fromByteOffset: i, as: UInt8.self)
            if b == targets.0 || b == targets.1 || b == targets.2 || b == targets.3 { return i }
            i += 1
        }
        return end
    }
}

/// Why a report body was rejected.
public enum CSVError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The body is empty or blank: there is no header line.
    case empty
    /// The body is clearly something else; the text says what (an HTML or XML document, a JSON
    /// document, binary data).
    case notCSV(String)
    /// Required columns are not in the header: the missing names, then the header as found.
    case missingColumns([String], found: [String])
    /// A quoted field is never closed; `line` (1-based) is where its opening quote is.
    case unterminatedQuote(line: Int)
    /// Something other than a comma or a line end follows a closing quote on `line`.
    case textAfterQuote(line: Int)
    /// A `"` inside a field that does not start with one, on `line`.
    case quoteInUnquotedField(line: Int)
    /// The record starting on `line` has `found` fields where the header has `expected`.
    case wrongFieldCount(line: Int, found: Int, expected: Int)
    /// The last record (starting on `line`) has no line break at its end: the body was cut short.
    case truncated(line: Int)

    /// A one-line explanation for the operator, naming the line (1-based) or the columns involved.
    public var description: String {
        switch self {
        case .empty:
            return "the body is empty (no CSV header line)"
        case .notCSV(let what):
            return "the body is \(what), not a CSV report"
        case .missingColumns(let missing, let found):
            let shown = found.prefix(6).map { "'\($0)'" }.joined(separator: ", ")
            return "required column\(missing.count == 1 ? "" : "s") "
                + missing.map { "'\($0)'" }.joined(separator: ", ")
                + " missing (header has \(found.count) column\(found.count == 1 ? "" : "s"): \(shown)\(found.count > 6 ? ", ..." : ""))"
        case .unterminatedQuote(let line):
            return "unterminated quoted field starting on line \(line)"
        case .textAfterQuote(let line):
            return "unexpected text after a closing quote on line \(line)"
        case .quoteInUnquotedField(let line):
            return "stray quote inside an unquoted field on line \(line)"
        case .wrongFieldCount(let line, let found, let expected):
            return "line \(line) has \(found) field\(found == 1 ? "" : "s"), the header has \(expected) (truncated or damaged report)"
        case .truncated(let line):
            return "the body ends in the middle of line \(line) (truncated download)"
        }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        var scalars = Substring(self)
        while let f = scalars.first, f == " " || f == "\t" { scalars.removeFirst() }
        while let l = scalars.last, l == " " || l == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
