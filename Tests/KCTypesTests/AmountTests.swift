import KCTypes
import Testing

struct AmountTests {
    @Test func parsesEveryAcceptedForm() throws {
        #expect(try Amount(parsing: "10000ACTI") == .acti(10_000))
        #expect(try Amount(parsing: "10000 ACTI") == .acti(10_000))
        #expect(try Amount(parsing: "10,000acti") == .acti(10_000))
        #expect(try Amount(parsing: "1.5ACTI").units == 1_500_000_000_000_000_000)
        #expect(try Amount(parsing: "0.000000000000000001ACTI").units == 1)
        #expect(try Amount(parsing: "123").units == 123)
        #expect(try Amount(parsing: " 7 ").units == 7)
    }

    @Test func rejectsBadAmountsWithAReason() {
        #expect(throws: Amount.ParseError.empty) { try Amount(parsing: "") }
        #expect(throws: Amount.ParseError.notANumber("-5ACTI")) { try Amount(parsing: "-5ACTI") }
        #expect(throws: Amount.ParseError.notANumber("1.5")) { try Amount(parsing: "1.5") }  // base units are whole
        #expect(throws: Amount.ParseError.notANumber("ACTI")) { try Amount(parsing: "ACTI") }
        #expect(throws: Amount.ParseError.notANumber("1e18")) { try Amount(parsing: "1e18") }
        #expect(throws: Amount.ParseError.notANumber("1.ACTI")) { try Amount(parsing: "1.ACTI") }
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

    @Test func parseAndFormatRoundTrip() throws {
        var state: UInt64 = 77
        for _ in 0..<1_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let amount = Amount(units: UInt128(state) * UInt128(state >> 20))
            let text = amount.description.replacingOccurrences(of: " ACTI", with: "ACTI")
            #expect(try Amount(parsing: text) == amount)
        }
    }
}

import Foundation
