import ArgumentParser
import CheckWorker
import ExchangeChecks
import Foundation

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks (build with -c release).",
        subcommands: [
            BenchParse.self, BenchWarm.self, BenchRefresh.self, BenchKafka.self, BenchWorker.self, BenchSoak.self, BenchSubmit.self, BenchPipeline.self,
        ]
    )
}

/// `exocheck bench parse`: generate large reports in memory and time parse + evaluate.
struct BenchParse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse",
        abstract: "Time CSV parsing and check evaluation on generated 100,000-row reports."
    )

    @Option(help: "Rows per generated report.") var rows = 100_000
    @Option(help: "Repetitions (the best and median are reported).") var repetitions = 5

    func run() async throws {
        let mailboxCSV = ReportGenerator.mailboxUsageCSV(rows: rows)
        let (periodCSV, dailyCSV) = ReportGenerator.emailActivityCSV(rows: rows)
        let rss0 = ProcessMemory.peakRSSMegabytes()
        SafeOutput.print(
            "exocheck bench parse: \(rows) rows; mailbox report \(mb(mailboxCSV.count)) MB, email D7 \(mb(periodCSV.count)) MB, daily \(mb(dailyCSV.count)) MB")
        let mu = try CheckConfiguration(mode: .mailboxUsage)
        var muAll = mu
        muAll.filterCounters = nil
        let ea = try CheckConfiguration(mode: .emailActivity)
        let tz = TimeZone(identifier: "UTC") ?? .current

        func measure(_ name: String, bytes: Int, _ body: () throws -> Void) rethrows {
            var times: [Double] = []
            for _ in 0..<max(1, repetitions) {
                let start = ContinuousClock.now
                try body()
                let d = start.duration(to: .now)
                times.append(BenchWorker.ms(d))
            }
            times.sort()
            let best = times[0], median = times[times.count / 2]
            let rate = bytes > 0 ? String(format: ", %.0f MB/s", Double(bytes) / 1_048_576 / (median / 1000)) : ""
            SafeOutput.print(String(format: "  %-44@ best %8.1f ms  median %8.1f ms%@", name as NSString, best, median, rate))
        }
        var sink = 0
        try measure("CSV scan only (mailbox usage, 8 columns)", bytes: mailboxCSV.count) {
            sink &+= try CSVTable.parse(mailboxCSV, columns: ReportParser.mailboxUsageColumns).rows.count
        }
        try measure("parse mailbox usage", bytes: mailboxCSV.count) { sink &+= try ReportParser.mailboxUsage(mailboxCSV).count }
        try measure("parse email activity (D7 + daily)", bytes: periodCSV.count + dailyCSV.count) {
            sink &+= try ReportParser.emailActivity(periodCSV).count + ReportParser.emailActivity(dailyCSV).count
        }
        let mailboxes = try ReportParser.mailboxUsage(mailboxCSV)
        let period = try ReportParser.emailActivity(periodCSV)
        let daily = try ReportParser.emailActivity(dailyCSV)
        measure("evaluate mailbox-usage (default counters)", bytes: 0) {
            sink &+= MailboxUsageCheck.evaluate(period: mailboxes, config: mu, timeZone: tz).perfdata.count
        }
        measure("evaluate mailbox-usage (--filter-counters='')", bytes: 0) {
            sink &+= MailboxUsageCheck.evaluate(period: mailboxes, config: muAll, timeZone: tz).perfdata.count
        }
        measure("evaluate email-activity (default counters)", bytes: 0) {
            sink &+= EmailActivityCheck.evaluate(period: period, daily: daily, config: ea, timeZone: tz).perfdata.count
        }
        // The worker's path (issue 11): parse once into a snapshot, then evaluate from it.
        let mailboxRequest = ReportRequest(report: CheckMode.mailboxUsage.reportName, parameter: .period("D7"))
        measure("snapshot mailbox usage (parse into a snapshot)", bytes: mailboxCSV.count) {
            sink &+= ReportSnapshot.parse(mailboxCSV, request: mailboxRequest).bytes
        }
        let mailboxTable = try ReportSnapshot.parse(mailboxCSV, request: mailboxRequest).mailboxUsage()
        measure("evaluate mailbox-usage from the snapshot (default)", bytes: 0) {
            sink &+= MailboxUsageCheck.evaluate(period: mailboxTable, config: mu, timeZone: tz).perfdata.count
        }
        let aggregate = MailboxUsageCheck.aggregate(period: mailboxTable, filter: nil)
        measure("  … with the filter's aggregate memoised", bytes: 0) {
            sink &+= MailboxUsageCheck.evaluate(aggregate, period: mailboxTable, config: mu, timeZone: tz).perfdata.count
        }
        measure("first evaluation after download (snapshot + evaluate)", bytes: mailboxCSV.count) {
            if let table = try? ReportSnapshot.parse(mailboxCSV, request: mailboxRequest).mailboxUsage() {
                sink &+= MailboxUsageCheck.evaluate(period: table, config: mu, timeZone: tz).perfdata.count
            }
        }
        try measure("whole check mailbox-usage (parse+evaluate+render)", bytes: mailboxCSV.count) {
            let rows = try ReportParser.mailboxUsage(mailboxCSV)
            let r = MailboxUsageCheck.evaluate(period: rows, config: mu, timeZone: tz)
            sink &+= OutputRenderer.render(r, options: mu.output).text.count
        }
        SafeOutput.print(
            "  peak RSS: \(String(format: "%.0f", ProcessMemory.peakRSSMegabytes())) MB (after generating the inputs: \(String(format: "%.0f", rss0)) MB)  [\(sink % 10)]"
        )
    }

    func mb(_ n: Int) -> String { String(format: "%.1f", Double(n) / 1_048_576) }
}

enum ProcessMemory {
    /// Resident set size now (VmRSS) in MB, from /proc/self/status.
    static func currentRSSMegabytes() -> Double { statusField("VmRSS:") }

    static func statusField(_ name: String) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
        }
        return 0
    }

    /// Peak resident set size (VmHWM) in MB, from /proc/self/status.
    static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }
}

/// Large reports shaped like Graph's (BOM, CRLF, quoted display names) for benchmarks.
enum ReportGenerator {
    static func mailboxUsageCSV(rows: Int) -> [UInt8] {
        var s =
            "\u{FEFF}Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Created Date,Last Activity Date,Item Count,Storage Used (Byte),Issue Warning Quota (Byte),Prohibit Send Quota (Byte),Prohibit Send/Receive Quota (Byte),Deleted Item Count,Deleted Item Size (Byte),Deleted Item Quota (Byte),Has Archive,Recipient Type,Report Period\r\n"
        s.reserveCapacity(rows * 260)
        for i in 0..<rows {
            let active = i % 2 == 0 ? "2025-06-28" : "2025-06-2\(i % 7)"
            s +=
                "2025-06-28,user\(i).name@fabrikam.example,\"Name, User \(i)\",False,,2021-03-04,\(active),\(i * 7 % 100_000),\(Int64(i) * 1_048_573),105226698752,106300440576,107374182400,\(i % 300),\(i * 13),32212254720,True,User,7\r\n"
        }
        return Array(s.utf8)
    }

    static func emailActivityCSV(rows: Int) -> ([UInt8], [UInt8]) {
        let header =
            "\u{FEFF}Report Refresh Date,User Principal Name,Display Name,Is Deleted,Deleted Date,Last Activity Date,Send Count,Receive Count,Read Count,Meeting Created Count,Meeting Interacted Count,Assigned Products,Report Period\r\n"
        var period = header
        var daily = header
        period.reserveCapacity(rows * 180)
        daily.reserveCapacity(rows * 100)
        for i in 0..<rows {
            period +=
                "2025-06-28,user\(i).name@fabrikam.example,\"Name, User \(i)\",False,,2025-06-28,\(i % 97),\(i % 501),\(i % 403),1,2,MICROSOFT 365 E5,7\r\n"
            if i % 2 == 0 {
                daily +=
                    "2025-06-28,user\(i).name@fabrikam.example,\"Name, User \(i)\",False,,2025-06-28,\(i % 13),\(i % 71),\(i % 53),0,1,MICROSOFT 365 E5,1\r\n"
            }
        }
        return (Array(period.utf8), Array(daily.utf8))
    }
}
