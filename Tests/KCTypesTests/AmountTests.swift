import KCTypes
import Testing

/// SplitMix64, enough for test inputs (this target does not link KCTestSupport).
struct Mix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: UInt64) -> UInt64 { next() % bound }
}

struct AmountTests {
    @Test func parsesEveryAcceptedForm() throws {
        #expect(try Amount(parsing: "10000ACTI") == .acti(10_000))
        #expect(try Amount(parsing: "10000 ACTI") == .acti(10_000))
        #expect(try Amount(parsing: "10000acti") == .acti(10_000))
        #expect(try Amount(parsing: "1.5ACTI").units == 1_500_000_000_000_000_000)
        #expect(try Amount(parsing: "0.000000000000000001ACTI").units == 1)
        #expect(try Amount(parsing: "123").units == 123)
        #expect(try Amount(parsing: " 7 ").units == 7)
    }

    /// Nothing is dropped: each of these once parsed as another amount (`1,5ACTI` staked 15 ACTI,
    /// `1,,0ACTI` 10) or is ambiguous; each is refused naming the character and its position.
    @Test func refusesEveryCharacterOutsideTheForm() {
        let cases: [(String, Character, Int)] = [
            ("1,5ACTI", ",", 2), ("1,,0ACTI", ",", 2), ("10,000ACTI", ",", 3), ("1_000", "_", 2), ("-5ACTI", "-", 1),
            ("+5", "+", 1), ("1e18", "e", 2), ("1.5.0ACTI", ".", 4), ("1 000 ACTI", " ", 2), ("12  ACTI", " ", 3),
            ("0x10", "x", 2), ("١٢٣", "١", 1), ("5ACTI ACTI", "A", 2), ("1'000", "'", 2), ("5 DOGE", " ", 2),
        ]
        for (text, character, position) in cases {
            #expect(throws: Amount.ParseError.unexpectedCharacter(text, character, position: position), "\(text)") { try Amount(parsing: text) }
        }
        let message = String(describing: Amount.ParseError.unexpectedCharacter("1,5ACTI", ",", position: 2))
        #expect(message.contains("',' at position 2") && message.contains("10000ACTI, 1.5 ACTI"))
    }

    @Test func rejectsBadAmountsWithAReason() {
        #expect(throws: Amount.ParseError.empty) { try Amount(parsing: "") }
        #expect(throws: Amount.ParseError.empty) { try Amount(parsing: "   ") }
        #expect(throws: Amount.ParseError.fractionalBaseUnits("1.5")) { try Amount(parsing: "1.5") }  // base units are whole
        #expect(throws: Amount.ParseError.notANumber("ACTI")) { try Amount(parsing: "ACTI") }
        #expect(throws: Amount.ParseError.notANumber("1.ACTI")) { try Amount(parsing: "1.ACTI") }
        #expect(throws: Amount.ParseError.notANumber(".5ACTI")) { try Amount(parsing: ".5ACTI") }
        #expect(throws: Amount.ParseError.tooManyDecimals("0.0000000000000000001ACTI")) {
            try Amount(parsing: "0.0000000000000000001ACTI")
        }
        #expect(throws: Amount.ParseError.tooLarge("999999999999999999999999999999999999999999ACTI")) {
            try Amount(parsing: "999999999999999999999999999999999999999999ACTI")
        }
        #expect(throws: Amount.ParseError.tooLarge("340282366920938463463374607431768211456")) {
            try Amount(parsing: "340282366920938463463374607431768211456")  // 2^128
        }
    }

    @Test func formatsWithSeparatorsAndTrimmedDecimals() throws {
        #expect(Amount.acti(10_000).description == "10,000 ACTI")
        #expect(Amount.acti(5_000).description == "5,000 ACTI")
        #expect(try Amount(parsing: "1.5ACTI").description == "1.5 ACTI")
        #expect(Amount(units: 1).description == "0.000000000000000001 ACTI")
        #expect(Amount.zero.description == "0 ACTI")
        #expect(Amount.acti(1_234_567).description == "1,234,567 ACTI")
    }

    @Test func checkedArithmeticNeverTraps() {
        let max = Amount(units: .max)
        #expect(max.adding(Amount(units: 1)) == nil)
        #expect(Amount.zero.subtracting(Amount(units: 1)) == nil)
        #expect(Amount.acti(3).subtracting(.acti(1)) == .acti(2))
        #expect(Amount.acti(3).adding(.acti(1)) == .acti(4))
        #expect(max.multiplied(by: 2, dividedBy: 1) == nil)
        #expect(max.multiplied(by: 3, dividedBy: 3) == max)  // no intermediate overflow
        #expect(Amount.acti(1).multiplied(by: 1, dividedBy: 0) == nil)
        #expect(Amount(units: 10).multiplied(by: 1, dividedBy: 3) == Amount(units: 3))  // rounds down
        #expect(Amount.acti(10_000).fraction(basisPoints: 500) == .acti(500))
        #expect(Amount(units: 19_999).fraction(basisPoints: 1) == Amount(units: 1))
    }

    /// Every amount reads back from its plain text, with or without the space before the unit,
    /// and from its base units.
    @Test func parseAndFormatRoundTrip() throws {
        var random = Mix(seed: 77)
        for round in 0..<5_000 {
            let high = UInt128(random.next()) >> (random.below(64))
            let amount = round == 0 ? Amount(units: .max) : Amount(units: high << 64 | UInt128(random.next()) >> random.below(64))
            #expect(try Amount(parsing: amount.plainText) == amount)
            #expect(try Amount(parsing: amount.plainText.replacingOccurrences(of: "ACTI", with: " acti")) == amount)
            #expect(try Amount(parsing: String(amount.units)) == amount)
        }
    }

    /// Any amount's text with one foreign character put anywhere, or a digit dropped after a
    /// point made twice, never parses: an input either means exactly what it says or is refused.
    @Test func everyMalformedFormIsRefused() throws {
        var random = Mix(seed: 1_515)
        let foreign: [Character] = [",", "_", "-", "+", "e", "E", "x", " ", "'", "/", "$", "\u{00A0}", "٣", "Ⅴ", "½", "."]
        var refused = 0
        for _ in 0..<5_000 {
            let amount = Amount(units: UInt128(random.next()) * UInt128(random.below(1 << 40)))
            let text = Array(amount.plainText.dropLast(4))  // the number, then the unit put back
            let character = foreign[Int(random.below(UInt64(foreign.count)))]
            let position = Int(random.below(UInt64(text.count + 1)))
            var mutated = text
            mutated.insert(character, at: position)
            let candidate = String(mutated) + "ACTI"
            // A '.' inserted into a number without one, not first and not last, is a valid decimal.
            let isValidDecimal = character == "." && !text.contains(".") && position > 0 && position < text.count
            // A space at either end is whitespace around the whole or before the unit.
            let isOuterSpace = character == " " && (position == 0 || position == text.count)
            if isValidDecimal || isOuterSpace || (character == "\u{00A0}" && position == 0) { continue }
            #expect(throws: Amount.ParseError.self, "\(candidate) must be refused") { try Amount(parsing: candidate) }
            refused += 1
        }
        #expect(refused > 4_000)
    }
}
