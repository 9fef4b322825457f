/// Broken bodies on demand, and the byte shape of good ones (BOM, line ends).
enum Malformation {
    static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    /// `csv` is LF-terminated without BOM.
    static func apply(_ kind: MalformedKind, to csv: [UInt8]) -> [UInt8] {
        let text = String(decoding: csv, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        let header = lines.first ?? ""
        let rows = Array(lines.dropFirst())
        switch kind {
        case .unterminatedQuote:
            var out = [header]
            if let first = rows.first { out.append(first) }
            out.append("2025-06-28,\"broken.user@contoso.com,Broken User,False")
            out.append(contentsOf: rows.dropFirst())
            return Array((out.joined(separator: "\n") + "\n").utf8)
        case .truncated:
            let cut = max(header.utf8.count + 1 + 20, csv.count / 2)
            return Array(csv.prefix(cut))
        case .html:
            return Array(
                "<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head><body><h1>Service Unavailable</h1><p>The report service is busy.</p></body></html>\n"
                    .utf8)
        case .json:
            return Array("{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.report)\",\"value\":[]}".utf8)
        case .empty:
            return []
        case .garbage:
            return Array(0x80...0xFF) + Array(repeating: [0x00, 0x01, 0x02, 0xFF, 0xFE, 0x0D, 0x0A], count: 3).flatMap { $0 }
        case .wrongHeader:
            let count = header.split(separator: ",", omittingEmptySubsequences: false).count
            let newHeader = (1...max(1, count)).map { "Column \($0)" }.joined(separator: ",")
            return Array(([newHeader] + rows).joined(separator: "\n").utf8) + [0x0A]
        case .shortRows:
            let shortened = rows.map { row in row.split(separator: ",", omittingEmptySubsequences: false).prefix(3).joined(separator: ",") }
            return Array(([header] + shortened).joined(separator: "\n").utf8) + [0x0A]
        case .headerOnlyNoNewline:
            return Array(header.utf8)
        case .hugeNumber, .fractionCount:
            // The count column (Send Count or Item Count) of the first unquoted row after the first.
            var out = rows
            let names = header.split(separator: ",", omittingEmptySubsequences: false)
            if let column = names.firstIndex(where: { $0 == "Send Count" || $0 == "Item Count" }),
                let row = out.indices.dropFirst().first(where: { !out[$0].contains("\"") })
            {
                var fields = out[row].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                if fields.count > column { fields[column] = kind == .hugeNumber ? String(repeating: "9", count: 400) : "2.5" }
                out[row] = fields.joined(separator: ",")
            }
            return Array(([header] + out).joined(separator: "\n").utf8) + [0x0A]
        }
    }

    /// Adds the BOM and CRLF line ends per tenant settings; broken bodies that are not CSV
    /// (HTML, JSON, empty, garbage) are served as they are.
    static func shape(_ bytes: [UInt8], tenant: SimulatedTenant, malformed: MalformedKind?) -> [UInt8] {
        switch malformed {
        case .html, .json, .empty, .garbage: return bytes
        default: break
        }
        var out: [UInt8] = tenant.bom ? bom : []
        out.reserveCapacity(bytes.count + bytes.count / 40 + 3)
        if tenant.lineEnding == .crlf {
            var previous: UInt8 = 0
            for b in bytes {
                if b == 0x0A, previous != 0x0D { out.append(0x0D) }
                out.append(b)
                previous = b
            }
        } else {
            out.append(contentsOf: bytes)
        }
        return out
    }
}
