import Foundation

/// One Nagios/Naemon/Icinga external command line, safe to write to the command pipe:
/// `[time] PROCESS_SERVICE_CHECK_RESULT;host;service;code;output`.
///
/// The host and service names cannot be escaped in this format, so a name containing `;`, a
/// control character (newline, CR, tab, …) or nothing at all is refused rather than written:
/// a newline there would end the command and let the rest be read as another external command.
/// The plugin output is the last field and keeps its `;`; newlines in it become the two
/// characters `\n` (Nagios turns them back into long output), tabs become spaces, and other
/// control characters are dropped, so no line break ever reaches the pipe.
public struct NagiosExternalCommand: Sendable, Equatable {
    /// The longest command Nagios reads, newline included (MAX_EXTERNAL_COMMAND_LENGTH).
    public static let maximumBytes = 8192

    /// The command without its newline; at most `maximumBytes - 1` UTF-8 bytes.
    public let line: String
    /// Whether the plugin output was shortened to fit `maximumBytes`.
    public let truncated: Bool

    /// What is written: the line and its newline.
    public var bytes: [UInt8] { Array(line.utf8) + [0x0A] }

    /// Why a result cannot become a command.
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        /// The result has no `host` or no `service` label (the label's name).
        case missingLabel(String)
        /// A label that cannot be written safely: its name and the reason.
        case unsafeLabel(String, reason: String)

        /// The reason as a phrase for messages, e.g. `no 'host' label`.
        public var description: String {
            switch self {
            case .missingLabel(let name): "no '\(name)' label"
            case .unsafeLabel(let name, let reason): "the '\(name)' label \(reason)"
            }
        }
    }

    /// A passive service check result. `returnCode` outside 0…3 is sent as 3 (UNKNOWN), the only
    /// codes Nagios accepts.
    public static func processServiceCheckResult(
        host: String, service: String, returnCode: Int, output: String,
        time: Date = Date()
    ) throws(Refusal) -> NagiosExternalCommand {
        try validateLabel(host, name: "host")
        try validateLabel(service, name: "service")
        let code = (0...3).contains(returnCode) ? returnCode : 3
        let seconds = Int64(exactly: time.timeIntervalSince1970.rounded(.down)) ?? 0
        let prefix = "[\(seconds)] PROCESS_SERVICE_CHECK_RESULT;\(host);\(service);\(code);"
        // The prefix is never cut: a command whose names alone do not fit is refused.
        let room = maximumBytes - 1 - prefix.utf8.count
        guard room >= 0 else {
            throw .unsafeLabel("host", reason: "and service names are too long for a \(maximumBytes)-byte external command")
        }
        let (text, truncated) = escapedOutput(output, maxBytes: room)
        return NagiosExternalCommand(line: prefix + text, truncated: truncated)
    }

    /// The command for a check result, with the host and service names from its labels.
    public static func processServiceCheckResult(for result: CheckResultMessage, time: Date = Date()) throws(Refusal) -> NagiosExternalCommand {
        guard let host = result.labels["host"] else { throw .missingLabel("host") }
        guard let service = result.labels["service"] else { throw .missingLabel("service") }
        return try processServiceCheckResult(host: host, service: service, returnCode: result.exitCode, output: result.output, time: time)
    }

    /// Refuses an empty name, `;` and every control character (Unicode category Cc: C0, DEL, C1).
    public static func validateLabel(_ value: String, name: String) throws(Refusal) {
        if value.isEmpty { throw .unsafeLabel(name, reason: "is empty") }
        for scalar in value.unicodeScalars {
            if scalar == ";" { throw .unsafeLabel(name, reason: "contains ';' (the field separator)") }
            if scalar.properties.generalCategory == .control {
                let code = "U+" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4)
                throw .unsafeLabel(name, reason: "contains the control character \(code)\(controlName(scalar).map { " (\($0))" } ?? "")")
            }
        }
    }

    /// The output with `\n` written as the two characters `\n`, tabs as spaces and other control
    /// characters (CR included, so CRLF counts as one newline) removed; cut at a character
    /// boundary (never inside a UTF-8 sequence or a `\n`) so that it is at most `maxBytes` bytes.
    public static func escapedOutput(_ output: String, maxBytes: Int) -> (text: String, truncated: Bool) {
        var text = ""
        var used = 0
        for scalar in output.unicodeScalars {
            let piece: String
            switch scalar {
            case "\n": piece = "\\n"
            case "\t": piece = " "
            case _ where scalar.properties.generalCategory == .control: continue
            default: piece = String(scalar)
            }
            let size = piece.utf8.count
            if size > maxBytes - used { return (text, true) }
            text += piece
            used += size
        }
        return (text, false)
    }

    private static func controlName(_ scalar: Unicode.Scalar) -> String? {
        switch scalar {
        case "\n": "newline"
        case "\r": "carriage return"
        case "\t": "tab"
        case "\0": "NUL"
        default: nil
        }
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
