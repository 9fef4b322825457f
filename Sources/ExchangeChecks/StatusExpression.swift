import Foundation

/// The expression language of `--warning-status`, `--critical-status` and `--unknown-status`,
/// e.g. `%{used} > %{issue_warning_quota}` or `%{display} =~ /^room/ and %{used} > 1000`.
///
/// The Centreon plugin substitutes the variables and hands the text to Perl's `eval`. exocheck
/// never executes user input: this is a small parser and evaluator with Perl's comparison
/// semantics (numeric operators turn strings into numbers, an empty or undefined value is 0 / "";
/// string operators compare text). Supported: `< > <= >= == != <=>`, `lt gt le ge eq ne cmp`,
/// `=~ !~` with `/regex/flags` or a string, `+ - * / % .`, `&& || !`, `and or not`, parentheses,
/// numeric and quoted string literals, and `%{name}` variables.
public struct StatusExpression: Sendable, Equatable {
    /// The expression text as given.
    public let source: String
    let root: Node

    /// Parses `source`; `option` names the option it came from (for regex time limits).
    /// Bounded: at most `CheckLimits.maxExpressionLength` characters, `maxExpressionTokens`
    /// tokens and `maxExpressionDepth` levels of parentheses and unary operators, so neither the
    /// parser nor the evaluator nor the tree's teardown can exhaust a thread's stack.
    public init(_ source: String, option: String = "status") throws(StatusExpressionError) {
        self.source = source
        let length = source.unicodeScalars.count
        if length > CheckLimits.maxExpressionLength {
            throw StatusExpressionError(
                position: CheckLimits.maxExpressionLength + 1,
                message: "expression of \(length) characters is longer than the limit of \(CheckLimits.maxExpressionLength)",
                isLimit: true)
        }
        let tokens = try Lexer.tokenize(source)
        if tokens.count - 1 > CheckLimits.maxExpressionTokens {
            throw StatusExpressionError(
                position: tokens[CheckLimits.maxExpressionTokens].position,
                message: "expression of \(tokens.count - 1) tokens is longer than the limit of \(CheckLimits.maxExpressionTokens)",
                isLimit: true)
        }
        var parser = Parser(tokens: tokens, source: source, option: option)
        self.root = try parser.parseExpression()
    }

    /// Evaluates to Perl truthiness. Variables not in `variables` are undefined.
    public func evaluate(_ variables: [String: String]) -> Bool {
        root.evaluate(variables).isTrue
    }

    /// The variable names the expression reads.
    public var variableNames: Set<String> { root.variableNames }
}

/// Why a status expression was refused: a syntax error or a size or depth limit, with where.
public struct StatusExpressionError: Error, Equatable, Sendable, CustomStringConvertible {
    /// 1-based character position in the expression.
    public let position: Int
    /// What is wrong, without the position; unless `isLimit`, it may quote part of the expression.
    public let message: String
    /// A size or depth limit was hit (the message quotes nothing from the expression).
    public var isLimit = false
    /// The message followed by `at position <n>`.
    public var description: String { "\(message) at position \(position)" }

    /// Builds an error at 1-based `position`; `isLimit` marks a size or depth limit.
    public init(position: Int, message: String, isLimit: Bool = false) {
        self.position = position
        self.message = message
        self.isLimit = isLimit
    }
}

// MARK: - Values

enum PerlValue: Equatable, Sendable {
    case undef
    case string(String)
    case number(Double)

    var number: Double {
        switch self {
        case .undef: return 0
        case .number(let n): return n
        case .string(let s): return PerlNumber.numify(s)
        }
    }

    var string: String {
        switch self {
        case .undef: return ""
        case .string(let s): return s
        case .number(let n): return PerlNumber.string(n)
        }
    }

    var isTrue: Bool {
        switch self {
        case .undef: return false
        case .number(let n): return n != 0
        case .string(let s): return !(s.isEmpty || s == "0")
        }
    }

    static func bool(_ b: Bool) -> PerlValue { b ? .number(1) : .string("") }
}

// MARK: - Syntax tree

indirect enum Node: Equatable, Sendable {
    case literal(PerlValue)
    case variable(String)
    case unary(String, Node)
    case binary(String, Node, Node)
    case match(Node, RegexBox, negated: Bool)
    case matchDynamic(Node, Node, negated: Bool, option: String)

    func evaluate(_ vars: [String: String]) -> PerlValue {
        switch self {
        case .literal(let v): return v
        case .variable(let name): return vars[name].map(PerlValue.string) ?? .undef
        case .unary(let op, let operand):
            let v = operand.evaluate(vars)
            switch op {
            case "!", "not": return .bool(!v.isTrue)
            case "-": return .number(-v.number)
            default: return .number(v.number)
            }
        case .binary(let op, let lhs, let rhs):
            switch op {
            case "&&", "and":
                let l = lhs.evaluate(vars)
                return l.isTrue ? rhs.evaluate(vars) : l
            case "||", "or":
                let l = lhs.evaluate(vars)
                return l.isTrue ? l : rhs.evaluate(vars)
            default: break
            }
            let l = lhs.evaluate(vars)
            let r = rhs.evaluate(vars)
            switch op {
            case "<": return .bool(l.number < r.number)
            case ">": return .bool(l.number > r.number)
            case "<=": return .bool(l.number <= r.number)
            case ">=": return .bool(l.number >= r.number)
            case "==": return .bool(l.number == r.number)
            case "!=": return .bool(l.number != r.number)
            case "<=>":
                let a = l.number, b = r.number
                return .number(a < b ? -1 : (a > b ? 1 : 0))
            case "lt": return .bool(l.string.utf8.lexicographicallyPrecedes(r.string.utf8))
            case "gt": return .bool(r.string.utf8.lexicographicallyPrecedes(l.string.utf8))
            case "le": return .bool(!r.string.utf8.lexicographicallyPrecedes(l.string.utf8))
            case "ge": return .bool(!l.string.utf8.lexicographicallyPrecedes(r.string.utf8))
            case "eq": return .bool(l.string == r.string)
            case "ne": return .bool(l.string != r.string)
            case "cmp":
                let a = l.string, b = r.string
                return .number(a == b ? 0 : (a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1))
            case "+": return .number(l.number + r.number)
            case "-": return .number(l.number - r.number)
            case "*": return .number(l.number * r.number)
            case "/":
                let d = r.number
                return d == 0 ? .undef : .number(l.number / d)  // Perl dies; treat as undefined
            case "%":
                return PerlNumber.modulo(l.number, r.number).map(PerlValue.number) ?? .undef
            case ".": return .string(l.string + r.string)
            default: return .undef
            }
        case .match(let subject, let regex, let negated):
            let s = subject.evaluate(vars).string
            return .bool(regex.matches(s) != negated)
        case .matchDynamic(let subject, let pattern, let negated, let option):
            let s = subject.evaluate(vars).string
            // A pattern from report data is compiled per row: not once the time is up.
            if RegexBudget.current != nil, BudgetedMatch.start(option) == nil { return .bool(false) }
            guard let regex = try? RegexBox(pattern: pattern.evaluate(vars).string, flags: "", option: option) else { return .bool(false) }
            return .bool(regex.matches(s) != negated)
        }
    }

    var variableNames: Set<String> {
        switch self {
        case .literal: return []
        case .variable(let n): return [n]
        case .unary(_, let o): return o.variableNames
        case .binary(_, let a, let b): return a.variableNames.union(b.variableNames)
        case .match(let a, _, _): return a.variableNames
        case .matchDynamic(let a, let b, _, _): return a.variableNames.union(b.variableNames)
        }
    }
}

/// A compiled regular expression compared by its source.
struct RegexBox: Equatable, Sendable {
    let pattern: String
    let flags: String
    let regex: NSRegularExpression
    /// The option of the expression (named when the match runs out of time).
    let option: String

    init(pattern: String, flags: String, option: String) throws {
        self.option = option
        var options: NSRegularExpression.Options = []
        for f in flags {
            switch f {
            case "i": options.insert(.caseInsensitive)
            case "s": options.insert(.dotMatchesLineSeparators)
            case "m": options.insert(.anchorsMatchLines)
            case "x": options.insert(.allowCommentsAndWhitespace)
            default: break
            }
        }
        self.pattern = pattern
        self.flags = flags
        self.regex = try RegexCache.compile(pattern, options: options)
    }

    func matches(_ s: String) -> Bool {
        BudgetedMatch.firstMatch(regex, in: s, range: NSRange(s.startIndex..., in: s), option: option) != nil
    }

    static func == (a: RegexBox, b: RegexBox) -> Bool { a.pattern == b.pattern && a.flags == b.flags }
}

// MARK: - Lexer

enum Token: Equatable {
    case number(Double)
    case string(String)
    case variable(String)
    case regex(String, flags: String)
    case op(String)
    case lparen, rparen
    case end
}

struct PositionedToken {
    let token: Token
    let position: Int  // 1-based
}

enum Lexer {
    static let wordOperators: Set<String> = ["and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "cmp"]
    static let symbolOperators = ["<=>", "=~", "!~", "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "."]

    static func tokenize(_ source: String) throws(StatusExpressionError) -> [PositionedToken] {
        let chars = Array(source)
        var i = 0
        var tokens: [PositionedToken] = []
        func error(_ message: String, at position: Int) -> StatusExpressionError {
            StatusExpressionError(position: position + 1, message: message)
        }
        /// A regex literal may follow `=~` / `!~` only.
        func expectsRegex() -> Bool {
            if case .op(let o)? = tokens.last?.token { return o == "=~" || o == "!~" }
            return false
        }
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace { i += 1; continue }
            let start = i
            if c == "%" && i + 1 < chars.count && chars[i + 1] == "{" {
                guard let close = chars[(i + 2)...].firstIndex(of: "}") else {
                    throw error("unclosed variable '%{'", at: start)
                }
                let name = String(chars[(i + 2)..<close])
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw error("invalid variable name '\(name)'", at: start)
                }
                tokens.append(.init(token: .variable(name), position: start + 1))
                i = close + 1
                continue
            }
            if expectsRegex(), c == "/" || (c == "m" && i + 1 < chars.count && !chars[i + 1].isLetter && !chars[i + 1].isNumber && !chars[i + 1].isWhitespace) {
                var j = c == "m" ? i + 1 : i
                let open = chars[j]
                let close: Character = ["{": "}", "(": ")", "[": "]", "<": ">"][open] ?? open
                j += 1
                var pattern = ""
                var closed = false
                while j < chars.count {
                    if chars[j] == "\\", j + 1 < chars.count, chars[j + 1] == close {
                        pattern.append(close)
                        j += 2
                        continue
                    }
                    if chars[j] == close { closed = true; j += 1; break }
                    pattern.append(chars[j])
                    j += 1
                }
                guard closed else { throw error("unterminated regular expression", at: start) }
                var flags = ""
                while j < chars.count, "imsx".contains(chars[j]) { flags.append(chars[j]); j += 1 }
                tokens.append(.init(token: .regex(pattern, flags: flags), position: start + 1))
                i = j
                continue
            }
            if c == "(" { tokens.append(.init(token: .lparen, position: start + 1)); i += 1; continue }
            if c == ")" { tokens.append(.init(token: .rparen, position: start + 1)); i += 1; continue }
            if c == "'" || c == "\"" {
                var j = i + 1
                var value = ""
                var closed = false
                while j < chars.count {
                    if chars[j] == "\\", j + 1 < chars.count {
                        let n = chars[j + 1]
                        if c == "\"" {
                            switch n {
                            case "n": value.append("\n")
                            case "t": value.append("\t")
                            default: value.append(n)
                            }
                        } else if n == "'" || n == "\\" {
                            value.append(n)
                        } else {
                            value.append("\\"); value.append(n)
                        }
                        j += 2
                        continue
                    }
                    if chars[j] == c { closed = true; j += 1; break }
                    value.append(chars[j])
                    j += 1
                }
                guard closed else { throw error("unterminated string literal", at: start) }
                tokens.append(.init(token: .string(value), position: start + 1))
                i = j
                continue
            }
            if c.isASCII, c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
                var j = i
                var text = ""
                while j < chars.count, chars[j].isASCII, chars[j].isNumber || chars[j] == "." || chars[j] == "_" {
                    if chars[j] != "_" { text.append(chars[j]) }
                    j += 1
                }
                if j < chars.count, chars[j] == "e" || chars[j] == "E" {
                    var k = j + 1
                    var exp = "e"
                    if k < chars.count, chars[k] == "+" || chars[k] == "-" { exp.append(chars[k]); k += 1 }
                    if k < chars.count, chars[k].isASCII, chars[k].isNumber {
                        while k < chars.count, chars[k].isASCII, chars[k].isNumber { exp.append(chars[k]); k += 1 }
                        text += exp
                        j = k
                    }
                }
                guard let value = Double(text) else { throw error("invalid number '\(text)'", at: start) }
                tokens.append(.init(token: .number(value), position: start + 1))
                i = j
                continue
            }
            if c.isLetter {
                var j = i
                var word = ""
                while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" { word.append(chars[j]); j += 1 }
                guard wordOperators.contains(word) else {
                    throw error("unknown word '\(word)' (variables are written %{name}, text in quotes)", at: start)
                }
                tokens.append(.init(token: .op(word), position: start + 1))
                i = j
                continue
            }
            var matched = false
            for op in symbolOperators {
                let opChars = Array(op)
                if i + opChars.count <= chars.count, Array(chars[i..<(i + opChars.count)]) == opChars {
                    tokens.append(.init(token: .op(op), position: start + 1))
                    i += opChars.count
                    matched = true
                    break
                }
            }
            if !matched {
                if c == "=" { throw error("'=' is an assignment; compare numbers with '==' or text with 'eq'", at: start) }
                throw error("unexpected character '\(c)'", at: start)
            }
        }
        tokens.append(.init(token: .end, position: chars.count + 1))
        return tokens
    }
}

// MARK: - Parser (precedence climbing, Perl's precedence order)

struct Parser {
    let tokens: [PositionedToken]
    let source: String
    let option: String
    var index = 0
    /// Current nesting of parentheses and prefix operators (bounded by `maxExpressionDepth`).
    var depth = 0

    init(tokens: [PositionedToken], source: String, option: String) {
        self.tokens = tokens
        self.source = source
        self.option = option
    }

    mutating func enter() throws(StatusExpressionError) {
        depth += 1
        if depth > CheckLimits.maxExpressionDepth {
            throw StatusExpressionError(
                position: current.position,
                message: "expression nested more than \(CheckLimits.maxExpressionDepth) levels deep (parentheses and prefix operators)",
                isLimit: true)
        }
    }

    var current: PositionedToken { tokens[index] }

    mutating func advance() { if index < tokens.count - 1 { index += 1 } }

    func fail(_ message: String) -> StatusExpressionError {
        StatusExpressionError(position: current.position, message: message)
    }

    func describeCurrent() -> String {
        switch current.token {
        case .end: return "end of expression"
        case .number(let n): return "number \(PerlNumber.string(n))"
        case .string(let s): return "string '\(s)'"
        case .variable(let v): return "%{\(v)}"
        case .regex(let p, _): return "/\(p)/"
        case .op(let o): return "'\(o)'"
        case .lparen: return "'('"
        case .rparen: return "')'"
        }
    }

    mutating func parseExpression() throws(StatusExpressionError) -> Node {
        if case .end = current.token { throw fail("empty expression") }
        let node = try parseLowOr()
        guard case .end = current.token else { throw fail("unexpected \(describeCurrent())") }
        return node
    }

    private mutating func isOp(_ names: Set<String>) -> String? {
        if case .op(let o) = current.token, names.contains(o) { return o }
        return nil
    }

    mutating func parseLowOr() throws(StatusExpressionError) -> Node {
        var lhs = try parseLowAnd()
        while let op = isOp(["or"]) {
            advance()
            lhs = .binary(op, lhs, try parseLowAnd())
        }
        return lhs
    }

    mutating func parseLowAnd() throws(StatusExpressionError) -> Node {
        var lhs = try parseLowNot()
        while let op = isOp(["and"]) {
            advance()
            lhs = .binary(op, lhs, try parseLowNot())
        }
        return lhs
    }

    mutating func parseLowNot() throws(StatusExpressionError) -> Node {
        if isOp(["not"]) != nil {
            try enter()
            defer { depth -= 1 }
            advance()
            return .unary("not", try parseLowNot())
        }
        return try parseOrOr()
    }

    mutating func parseOrOr() throws(StatusExpressionError) -> Node {
        var lhs = try parseAndAnd()
        while let op = isOp(["||"]) {
            advance()
            lhs = .binary(op, lhs, try parseAndAnd())
        }
        return lhs
    }

    mutating func parseAndAnd() throws(StatusExpressionError) -> Node {
        var lhs = try parseEquality()
        while let op = isOp(["&&"]) {
            advance()
            lhs = .binary(op, lhs, try parseEquality())
        }
        return lhs
    }

    mutating func parseEquality() throws(StatusExpressionError) -> Node {
        var lhs = try parseRelational()
        while let op = isOp(["==", "!=", "<=>", "eq", "ne", "cmp"]) {
            advance()
            lhs = .binary(op, lhs, try parseRelational())
        }
        return lhs
    }

    mutating func parseRelational() throws(StatusExpressionError) -> Node {
        var lhs = try parseAdditive()
        while let op = isOp(["<", ">", "<=", ">=", "lt", "gt", "le", "ge"]) {
            advance()
            lhs = .binary(op, lhs, try parseAdditive())
        }
        return lhs
    }

    mutating func parseAdditive() throws(StatusExpressionError) -> Node {
        var lhs = try parseMultiplicative()
        while let op = isOp(["+", "-", "."]) {
            advance()
            lhs = .binary(op, lhs, try parseMultiplicative())
        }
        return lhs
    }

    mutating func parseMultiplicative() throws(StatusExpressionError) -> Node {
        var lhs = try parseBinding()
        while let op = isOp(["*", "/", "%"]) {
            advance()
            lhs = .binary(op, lhs, try parseBinding())
        }
        return lhs
    }

    mutating func parseBinding() throws(StatusExpressionError) -> Node {
        let lhs = try parseUnary()
        if let op = isOp(["=~", "!~"]) {
            advance()
            let negated = op == "!~"
            if case .regex(let pattern, let flags) = current.token {
                let box: RegexBox
                do { box = try RegexBox(pattern: pattern, flags: flags, option: option) } catch is RegexCache.TooLong {
                    throw fail("regular expression longer than \(CheckLimits.maxRegexLength) characters")
                } catch {
                    throw fail("invalid regular expression /\(pattern)/")
                }
                advance()
                return .match(lhs, box, negated: negated)
            }
            let rhs = try parseUnary()
            if case .literal(let value) = rhs {
                let box: RegexBox
                do { box = try RegexBox(pattern: value.string, flags: "", option: option) } catch is RegexCache.TooLong {
                    throw fail("regular expression longer than \(CheckLimits.maxRegexLength) characters")
                } catch {
                    throw fail("invalid regular expression '\(value.string)'")
                }
                return .match(lhs, box, negated: negated)
            }
            return .matchDynamic(lhs, rhs, negated: negated, option: option)
        }
        return lhs
    }

    mutating func parseUnary() throws(StatusExpressionError) -> Node {
        if let op = isOp(["!", "-", "+"]) {
            try enter()
            defer { depth -= 1 }
            advance()
            return .unary(op, try parseUnary())
        }
        return try parsePrimary()
    }

    mutating func parsePrimary() throws(StatusExpressionError) -> Node {
        switch current.token {
        case .number(let n):
            advance()
            return .literal(.number(n))
        case .string(let s):
            advance()
            return .literal(.string(s))
        case .variable(let v):
            advance()
            return .variable(v)
        case .lparen:
            try enter()
            defer { depth -= 1 }
            advance()
            let inner = try parseLowOr()
            guard case .rparen = current.token else { throw fail("expected ')' but found \(describeCurrent())") }
            advance()
            return inner
        case .end:
            let previous = index > 0 ? tokens[index - 1] : nil
            if case .op(let o)? = previous?.token { throw fail("expected a value after '\(o)' but the expression ends") }
            throw fail("expected a value but the expression ends")
        default:
            throw fail("expected a value but found \(describeCurrent())")
        }
    }
}
