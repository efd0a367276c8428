import KCTypes
import Testing

/// The one-line JSON writer the API and the logs use.
struct JSONWriterTests {
    @Test func compactWritesEveryKindAndEscapesExactly() {
        let value = JSONValue.object([
            ("a", .null), ("b", .bool(true)), ("c", .bool(false)), ("n", .number("-12.50e3")),
            ("s", .string("q\"b\\n\nr\rt\tc\u{01}\u{1f} del\u{7f} é 😀 /")),
            ("list", .array([.array([]), .object([]), .number("0")])),
            ("k\"ey", .object([("inner", .string(""))])),
        ])
        let expected = #"{"a":null,"b":true,"c":false,"n":-12.50e3,"s":"q\"b\\n\nr\rt\tc\u0001\u001f del"# + "\u{7f}"
            + #" é 😀 /","list":[[],{},0],"k\"ey":{"inner":""}}"#
        #expect(value.compact() == expected)
        #expect(JSONValue.quote("\u{00}x\u{0b}") == #""\u0000x\u000b""#)
    }

    /// Whatever the strings hold, the text parses back to the same value.
    @Test func compactParsesBackToTheSameValue() throws {
        var generator = Mix(seed: 7)
        let alphabet: [Character] = ["a", "\"", "\\", "\n", "\r", "\t", "\u{00}", "\u{1f}", "\u{7f}", "é", "😀", "/", " ", "\u{2028}"]
        func text() -> String { String((0..<Int.random(in: 0..<12, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }) }
        func value(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2: return .number(String(Int64.random(in: .min ... .max, using: &generator)))
            case 3: return .string(text())
            case 4: return .array((0..<Int.random(in: 0..<4, using: &generator)).map { _ in value(depth + 1) })
            default:
                var names = Set<String>()
                var members: [(String, JSONValue)] = []
                for _ in 0..<Int.random(in: 0..<4, using: &generator) {
                    let name = text()
                    if names.insert(name).inserted { members.append((name, value(depth + 1))) }
                }
                return .object(members)
            }
        }
        for _ in 0..<300 {
            let original = value(0)
            let written = original.compact()
            #expect(try StrictJSON.parse(written) == original, "\(written)")
        }
    }
}
