import Crypto
import Foundation

/// A report as rows of text fields (header first), before it is shaped into a response body.
struct ReportTable: Sendable {
    var header: [String]
    var rows: [[String]]

    /// RFC 4180 with minimal quoting, LF line ends (shaping adds CRLF and the BOM).
    func csv() -> [UInt8] {
        var out = ""
        out.reserveCapacity(rows.count * 160)
        func line(_ fields: [String]) {
            out += fields.map(Self.quote).joined(separator: ",")
            out += "\n"
        }
        line(header)
        rows.forEach(line)
        return Array(out.utf8)
    }

    static func quote(_ f: String) -> String {
        if f.contains(",") || f.contains("\"") || f.contains("\n") || f.contains("\r") {
            return "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return f
    }

    /// A small, independent RFC 4180 reader for the bundled fixture files.
    static func parse(_ text: String) -> ReportTable {
        var records: [[String]] = []
        var field = ""
        var record: [String] = []
        var inQuotes = false
        var iterator = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        while let c = pending ?? iterator.next() {
            pending = nil
            if inQuotes {
                if c == "\"" {
                    if let n = iterator.next() {
                        if n == "\"" { field.unicodeScalars.append("\"") } else { inQuotes = false; pending = n }
                    } else {
                        inQuotes = false
                    }
                } else {
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"": inQuotes = true
            case ",": record.append(field); field = ""
            case "\r": break
            case "\n":
                record.append(field)
                records.append(record)
                record = []
                field = ""
            default: field.unicodeScalars.append(c)
            }
        }
        if !field.isEmpty || !record.isEmpty { record.append(field); records.append(record) }
        guard let header = records.first else { return ReportTable(header: [], rows: []) }
        return ReportTable(header: header, rows: Array(records.dropFirst()))
    }

    /// Replace UPN and display name with 32-hex-digit hashes, as the concealment setting does.
    func concealed() -> ReportTable {
        let targets = ["User Principal Name", "Display Name"].compactMap { header.firstIndex(of: $0) }
        var copy = self
        for i in copy.rows.indices {
            for t in targets where t < copy.rows[i].count && !copy.rows[i][t].isEmpty {
                copy.rows[i][t] = String(Hashing.sha256Hex("conceal:" + copy.rows[i][t]).prefix(32)).uppercased()
            }
        }
        return copy
    }
}

enum Hashing {
    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}

/// The report data of one tenant: period reports by report name, daily reports by date.
struct TenantReports: Sendable {
    var period: [String: ReportTable]
    var daily: [String: [String: ReportTable]]
    /// Reports that have a `date=` form.
    static let datedReports: Set<String> = ["getEmailActivityUserDetail"]

    static let emailActivityHeader = [
        "Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date", "Last Activity Date",
        "Send Count", "Receive Count", "Read Count", "Meeting Created Count", "Meeting Interacted Count",
        "Assigned Products", "Report Period",
    ]
    static let mailboxUsageHeader = [
        "Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date", "Created Date",
        "Last Activity Date", "Item Count", "Storage Used (Byte)", "Issue Warning Quota (Byte)", "Prohibit Send Quota (Byte)",
        "Prohibit Send/Receive Quota (Byte)", "Deleted Item Count", "Deleted Item Size (Byte)", "Deleted Item Quota (Byte)",
        "Has Archive", "Recipient Type", "Report Period",
    ]

    func table(report: String, date: String?) -> ReportTable? {
        if let date {
            guard Self.datedReports.contains(report) else { return nil }
            if let t = daily[report]?[date] ?? daily[report]?["*"] { return t }
            // A date nobody was active on: header only.
            guard let header = period[report]?.header else { return nil }
            return ReportTable(header: header, rows: [])
        }
        return period[report]
    }

    /// A bundled fixture directory (`Fixtures/<name>/fixture.json` + CSV files).
    static func fixture(_ name: String) throws -> TenantReports {
        guard let base = Bundle.module.resourceURL?.appendingPathComponent("Fixtures").appendingPathComponent(name),
            let manifestData = FileManager.default.contents(atPath: base.appendingPathComponent("fixture.json").path),
            let manifest = try JSONSerialization.jsonObject(with: manifestData) as? [String: Any],
            let reports = manifest["reports"] as? [String: [String: [String: String]]]
        else { throw SimulatorError("bundled fixture '\(name)' is missing or invalid") }
        func load(_ file: String) throws -> ReportTable {
            guard let data = FileManager.default.contents(atPath: base.appendingPathComponent(file).path) else {
                throw SimulatorError("fixture file '\(name)/\(file)' is missing")
            }
            var text = String(decoding: data, as: UTF8.self)
            if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
            return ReportTable.parse(text)
        }
        var result = TenantReports(period: [:], daily: [:])
        for (report, variants) in reports {
            if let d7 = variants["period"]?["D7"] { result.period[report] = try load(d7) }
            for (date, file) in variants["date"] ?? [:] { result.daily[report, default: [:]][date] = try load(file) }
        }
        return result
    }

    /// A deterministic generated tenant (same parameters → same bytes).
    static func generated(_ g: GeneratedData) -> TenantReports {
        var rng = SplitMix64(seed: g.seed)
        let date = g.reportDate
        let day = Self.dayNumber(date)
        func isoDate(_ offset: Int) -> String { Self.isoDate(day - offset) }
        let firstNames = [
            "adele", "alex", "diego", "grady", "isaiah", "johanna", "lee", "lidia", "megan", "nestor", "patti", "pradeep", "joni", "miriam", "irvin",
        ]
        let lastNames = [
            "vance", "wilber", "siciliani", "archie", "langer", "lorenz", "gu", "holloway", "bowen", "wilke", "fernandez", "gupta", "sherman", "graham",
            "sayers",
        ]
        let utf8Names = ["jérôme.müller", "zoë.ångström", "çağla.öztürk", "søren.kierkegård"]
        let products = ["MICROSOFT 365 E5", "OFFICE 365 E3", "OFFICE 365 E1", "MICROSOFT 365 BUSINESS STANDARD"]
        var emailPeriod: [[String]] = []
        var emailDaily: [[String]] = []
        var mailboxes: [[String]] = []
        let gb: Int64 = 1 << 30
        for i in 0..<g.users {
            let local: String
            if i % 97 == 96 {
                local = utf8Names[Int(rng.next() % UInt64(utf8Names.count))] + "\(i)"
            } else {
                local = firstNames[i % firstNames.count] + "." + lastNames[(i / firstNames.count) % lastNames.count] + "\(i)"
            }
            let upn = "\(local)@\(g.domain)"
            let display = local.split(separator: ".").map { $0.capitalized }.joined(separator: " ")
            let roll = rng.nextDouble()
            let deleted = roll < 0.036
            let neverActive = !deleted && roll < 0.126
            let activeToday = !deleted && !neverActive && rng.nextDouble() < 0.6
            let lastActivity = neverActive ? "" : (activeToday ? date : isoDate(1 + Int(rng.next() % 27)))
            let product = products[i % products.count]
            let send7 = neverActive ? "" : String(rng.next() % 300)
            let recv7 = neverActive ? "" : String(rng.next() % 2000)
            let read7 = neverActive ? "" : String(rng.next() % 1500)
            emailPeriod.append([
                date, upn, display, deleted ? "True" : "False", deleted ? isoDate(3) : "", lastActivity,
                send7, recv7, read7, neverActive ? "" : String(rng.next() % 10), neverActive ? "" : String(rng.next() % 20),
                product, "7",
            ])
            if activeToday {
                emailDaily.append([
                    date, upn, display, "False", "", date, String(rng.next() % 60), String(rng.next() % 300),
                    String(rng.next() % 250), String(rng.next() % 3), String(rng.next() % 5), product, "1",
                ])
            }
            // Mailbox of the same user.
            let big = i % 3 == 0
            let warnQuota = big ? 49 * gb + gb / 2 : 98 * gb
            let sendQuota = big ? 50 * gb - gb / 2 : 99 * gb
            let fullQuota = big ? 50 * gb : 100 * gb
            let over = rng.nextDouble() < g.overQuotaRatio
            let used: Int64 = over ? warnQuota + Int64(rng.next() % UInt64(fullQuota - warnQuota)) : Int64(rng.next() % UInt64(warnQuota / 2))
            let emptyStorage = i % 83 == 82
            mailboxes.append([
                date, upn, display, deleted ? "True" : "False", deleted ? isoDate(3) : "", isoDate(400 + i % 900),
                lastActivity, emptyStorage ? "" : String(rng.next() % 200_000), emptyStorage ? "" : String(used),
                String(warnQuota), String(sendQuota), String(fullQuota), String(rng.next() % 500),
                String(rng.next() % 100_000_000), String(30 * gb), i % 4 == 0 ? "True" : "False", "User", "7",
            ])
        }
        // Shared and room mailboxes: about 2.5 % more.
        for j in 0..<(g.users / 40) {
            let shared = j % 5 != 4
            let upn = (shared ? "shared\(j)" : "room\(j)") + "@\(g.domain)"
            let active = rng.nextDouble() < 0.5
            mailboxes.append([
                date, upn, shared ? "Shared \(j)" : "Room \(j)", "False", "", isoDate(700), active ? date : isoDate(5),
                String(rng.next() % 50_000), String(rng.next() % UInt64(10 * gb)), String(49 * gb + gb / 2),
                String(50 * gb - gb / 2), String(50 * gb), "0", "0", String(30 * gb), "False",
                shared ? "Shared" : "Room", "7",
            ])
        }
        return TenantReports(
            period: [
                "getEmailActivityUserDetail": ReportTable(header: emailActivityHeader, rows: emailPeriod),
                "getMailboxUsageDetail": ReportTable(header: mailboxUsageHeader, rows: mailboxes),
            ],
            daily: ["getEmailActivityUserDetail": [date: ReportTable(header: emailActivityHeader, rows: emailDaily)]])
    }

    /// Days since 1970-01-01 of a YYYY-MM-DD date (proleptic Gregorian).
    static func dayNumber(_ iso: String) -> Int {
        let p = iso.split(separator: "-").compactMap { Int($0) }
        guard p.count == 3 else { return 20267 }
        var y = p[0]
        let m = p[1], d = p[2]
        y -= m <= 2 ? 1 : 0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func isoDate(_ days: Int) -> String {
        let z = days + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return String(format: "%04d-%02d-%02d", y, m, d)
    }
}

/// Small deterministic PRNG (SplitMix64): generated tenants are identical across runs and platforms.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
