import ExchangeChecks
import Testing

@testable import CheckWorker

@Suite("Parsed options by shape (CheckSpecMemo)")
struct CheckSpecMemoTests {
    @Test("a kept option set comes back as it was parsed: configuration and shape, or the refusal's text")
    func keepsWhatWasParsed() throws {
        let memo = CheckSpecMemo()
        let args = ["--filter-counters=^active", "--warning-active-mailboxes=5"]
        let spec = try CheckSpec(mode: .mailboxUsage, options: CentreonArguments(args))
        let key = try #require(memo.key(mode: .mailboxUsage, arguments: args))
        #expect(memo.lookup(key) == nil)
        memo.store(key, .check(spec.configuration, shape: spec.shape), generation: RegexCache.generation)
        guard case .check(_, let shape) = memo.lookup(key) else {
            Issue.record("not kept")
            return
        }
        #expect(shape == spec.shape)
        // Another mode with the same arguments is another key.
        let other = try #require(memo.key(mode: .emailActivity, arguments: args))
        #expect(memo.lookup(other) == nil)
        memo.store(other, .refused("bad option"), generation: RegexCache.generation)
        guard case .refused(let text) = memo.lookup(other) else {
            Issue.record("refusal not kept")
            return
        }
        #expect(text == "bad option")
    }

    @Test("limit: argument lists over maxKeyBytes are never kept (hostile requests cannot fill memory with keys)")
    func longArgumentsNotKept() {
        let memo = CheckSpecMemo(maxEntries: 8, maxKeyBytes: 100)
        #expect(memo.key(mode: .mailboxUsage, arguments: [String(repeating: "a", count: 100)]) != nil)
        #expect(memo.key(mode: .mailboxUsage, arguments: [String(repeating: "a", count: 60), String(repeating: "b", count: 41)]) == nil)
    }

    @Test("limit: at maxEntries the memo starts again empty, so it never holds more")
    func boundedEntries() throws {
        let memo = CheckSpecMemo(maxEntries: 8, maxKeyBytes: 100)
        for i in 0..<20 {
            let key = try #require(memo.key(mode: .mailboxUsage, arguments: ["--warning-items=\(i)"]))
            memo.store(key, .refused("\(i)"), generation: 0, now: 0)
            #expect(memo.count <= 8)
        }
        let last = try #require(memo.key(mode: .mailboxUsage, arguments: ["--warning-items=19"]))
        #expect(memo.lookup(last, generation: 0) != nil)
    }
}

@Suite("Keys by bytes, and compiled patterns let go")
struct CanonicalEquivalenceTests {
    @Test("canonically equal options (é and e + U+0301) are different memo keys (was: one request's parsed filter served for the other)")
    func memoKeysByBytes() throws {
        let memo = CheckSpecMemo()
        let composed = try #require(memo.key(mode: .mailboxUsage, arguments: ["--filter-mailbox=^\u{E9}"]))
        let decomposed = try #require(memo.key(mode: .mailboxUsage, arguments: ["--filter-mailbox=^e\u{301}"]))
        #expect(composed != decomposed)
        memo.store(decomposed, .refused("decomposed"), generation: 0, now: 0)
        #expect(memo.lookup(composed, generation: 0) == nil)
    }

    @Test("a memo whose pattern cache emptied since starts again, and a parse from before the emptying is not kept (compiled patterns never outlive the cache)")
    func generation() throws {
        let memo = CheckSpecMemo()
        let key = try #require(memo.key(mode: .mailboxUsage, arguments: ["--warning-items=1"]))
        memo.store(key, .refused("x"), generation: 3, now: 3)
        #expect(memo.lookup(key, generation: 3) != nil)
        #expect(memo.lookup(key, generation: 4) == nil)
        #expect(memo.count == 0)
        memo.store(key, .refused("x"), generation: 4, now: 5)
        #expect(memo.lookup(key, generation: 5) == nil)
    }

    @Test("the pattern cache compiles canonically equal patterns apart: ^é does not match e + U+0301 after ^e + U+0301 was compiled (was: the cached one was reused)")
    func patternsByBytes() throws {
        let decomposed = try FilterRegex("^e\u{301}x")
        let composed = try FilterRegex("^\u{E9}x")
        #expect(decomposed.matches("e\u{301}x"))
        #expect(!composed.matches("e\u{301}x"))
        #expect(composed.matches("\u{E9}x"))
    }

    @Test("memo keys of canonically equal derivations differ (filters and checks are memoised by their bytes)")
    func memoKeyBytes() {
        let a = MemoKey(snapshots: [1], derivation: "filter:/^\u{E9}")
        let b = MemoKey(snapshots: [1], derivation: "filter:/^e\u{301}")
        #expect(a != b)
        #expect(Set([a, b]).count == 2)
        #expect(a == MemoKey(snapshots: [1], derivation: "filter:/^\u{E9}"))
    }
}

@Suite("Request text rules, fast paths")
struct RequestTextRuleTests {
    @Test("safe text: printable ASCII at once; DEL, C0 controls, C1 controls and line separators refused; other Unicode allowed")
    func safeText() {
        #expect(CheckRequestDecoder.isSafeText("host-01 ~!", maxBytes: 64))
        #expect(!CheckRequestDecoder.isSafeText("a\u{7F}", maxBytes: 64))
        #expect(!CheckRequestDecoder.isSafeText("a\u{1F}", maxBytes: 64))
        #expect(!CheckRequestDecoder.isSafeText("a\u{85}", maxBytes: 64))
        #expect(!CheckRequestDecoder.isSafeText("a\u{2028}", maxBytes: 64))
        #expect(CheckRequestDecoder.isSafeText("mailbox é😀", maxBytes: 64))
        #expect(!CheckRequestDecoder.isSafeText("", maxBytes: 64))
        #expect(!CheckRequestDecoder.isSafeText("abc", maxBytes: 2))
    }

    @Test("names that look secret, in any case and anywhere in the name; others not")
    func looksSecret() {
        for name in ["client-secret", "PASSWORD", "x-api-key-y", "my_token", "Certificate-File", "credential", "passwd", "privatekey"] {
            #expect(OptionTable.looksSecret(name), "\(name)")
        }
        for name in ["warning-items", "filter-counters", "tok", "secre", "", "api_key"] {
            #expect(!OptionTable.looksSecret(name), "\(name)")
        }
    }
}
