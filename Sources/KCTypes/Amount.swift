import KCCodec

/// An amount of ACTI in base units (1 ACTI = 10^18 units). Integers only, and every
/// arithmetic operation is checked: it returns nil on overflow or underflow and never traps,
/// so an amount taken from a transaction can never crash the node.
public struct Amount: Hashable, Comparable, Sendable, CanonicalCodable, CustomStringConvertible {
    public let units: UInt128

    public static let unitsPerACTI: UInt128 = 1_000_000_000_000_000_000
    public static let zero = Amount(units: 0)
    /// The number of basis points in a whole (fractions are written in basis points).
    public static let basisPointsPerWhole: UInt128 = 10_000

    public init(units: UInt128) { self.units = units }

    /// Whole ACTI; precondition: no overflow (for constants and tests).
    public static func acti(_ whole: UInt64) -> Amount {
        Amount(units: UInt128(whole) * unitsPerACTI)
    }

    public static func < (lhs: Amount, rhs: Amount) -> Bool { lhs.units < rhs.units }

    public func adding(_ other: Amount) -> Amount? {
        let (sum, overflow) = units.addingReportingOverflow(other.units)
        return overflow ? nil : Amount(units: sum)
    }

    public func subtracting(_ other: Amount) -> Amount? {
        let (difference, overflow) = units.subtractingReportingOverflow(other.units)
        return overflow ? nil : Amount(units: difference)
    }

    /// `self * numerator / denominator`, rounded down, computed without intermediate
    /// overflow. Nil if the denominator is zero or the result does not fit.
    public func multiplied(by numerator: UInt128, dividedBy denominator: UInt128) -> Amount? {
        guard denominator != 0 else { return nil }
        let product = units.multipliedFullWidth(by: numerator)
        guard product.high < denominator else { return nil }  // quotient would not fit
        return Amount(units: denominator.dividingFullWidth(product).quotient)
    }

    /// The part of this amount given by `basisPoints` (1/10,000), rounded down.
    public func fraction(basisPoints: UInt32) -> Amount {
        // Every basis-point parameter is checked to be at most 10,000 when genesis loads, so
        // the result never exceeds self and the division below cannot fail.
        precondition(basisPoints <= 10_000, "a fraction above 100% (\(basisPoints) basis points)")
        return multiplied(by: UInt128(basisPoints), dividedBy: Amount.basisPointsPerWhole)!
    }

    public func encode(to writer: inout CanonicalWriter) { writer.write(units) }
    public init(from reader: inout CanonicalReader) throws(DecodingError) {
        units = try reader.readUInt128("amount")
    }

    // MARK: text

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        /// A character that has no place in an amount, and its position (from 1).
        case unexpectedCharacter(String, Character, position: Int)
        case notANumber(String)
        /// A decimal point in base units (which are whole).
        case fractionalBaseUnits(String)
        case tooManyDecimals(String)
        case tooLarge(String)

        static let forms = "write digits with at most one decimal point and an optional unit: 10000ACTI, 1.5 ACTI, or a whole number of base units such as 1000"

        public var description: String {
            switch self {
            case .empty: return "an amount is required (\(Self.forms))"
            case .unexpectedCharacter(let text, let character, let position):
                let shown = character == " " ? "a space" : "'\(character)'"
                return "'\(text)' is not an amount: \(shown) at position \(position) is not allowed (no signs, separators or exponents); \(Self.forms)"
            case .notANumber(let text): return "'\(text)' is not an amount: \(Self.forms)"
            case .fractionalBaseUnits(let text): return "'\(text)' has a decimal point but no unit: base units are whole; write \(text)ACTI for ACTI"
            case .tooManyDecimals(let text): return "'\(text)' has more than 18 decimal places (1 ACTI = 10^18 units)"
            case .tooLarge(let text): return "'\(text)' is too large"
            }
        }
    }

    /// Parses an amount exactly or refuses it: ASCII digits with at most one decimal point and
    /// an optional unit `ACTI` (any case, after at most one space), for example `10000ACTI`,
    /// `10000 ACTI`, `1.5ACTI`; without the unit, a whole number of base units (`123`).
    /// Whitespace around the whole is ignored. Nothing is ever dropped: a sign, a thousands
    /// separator, an exponent or a space inside the number is refused, naming the character.
    public init(parsing text: String) throws(ParseError) {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw .empty }
        var number = Substring(trimmed)
        var isACTI = false
        if number.uppercased().hasSuffix("ACTI") {
            isACTI = true
            number = number.dropLast(4)
            if number.last == " " { number = number.dropLast() }
        }
        var wholePart = "", fractionPart = "", seenPoint = false
        for (offset, character) in number.enumerated() {
            if character.isASCII && character.isNumber {
                if seenPoint { fractionPart.append(character) } else { wholePart.append(character) }
            } else if character == "." && !seenPoint {
                seenPoint = true
            } else {
                throw .unexpectedCharacter(trimmed, character, position: offset + 1)
            }
        }
        guard !wholePart.isEmpty, !seenPoint || !fractionPart.isEmpty else { throw .notANumber(trimmed) }
        guard !seenPoint || isACTI else { throw .fractionalBaseUnits(trimmed) }
        guard fractionPart.count <= 18 else { throw .tooManyDecimals(trimmed) }
        guard let whole = UInt128(wholePart) else { throw .tooLarge(trimmed) }
        if !isACTI {
            units = whole
            return
        }
        let paddedFraction = fractionPart + String(repeating: "0", count: 18 - fractionPart.count)
        let fraction = UInt128(paddedFraction)!
        let (scaled, overflowMultiply) = whole.multipliedReportingOverflow(by: Amount.unitsPerACTI)
        let (total, overflowAdd) = scaled.addingReportingOverflow(fraction)
        guard !overflowMultiply && !overflowAdd else { throw .tooLarge(trimmed) }
        units = total
    }

    /// The shortest text `init(parsing:)` reads back as this amount: `10000ACTI`, `1.5ACTI`,
    /// `0.000000000000000001ACTI` (no separators; `description` is for display).
    public var plainText: String {
        let (whole, fraction) = wholeAndFraction
        return "\(whole)" + (fraction.map { "." + $0 } ?? "") + "ACTI"
    }

    /// Whole ACTI, and the decimals without trailing zeros (nil if none).
    var wholeAndFraction: (UInt128, String?) {
        let remainder = units % Amount.unitsPerACTI
        guard remainder != 0 else { return (units / Amount.unitsPerACTI, nil) }
        var fraction = String(remainder)
        fraction = String(repeating: "0", count: 18 - fraction.count) + fraction
        while fraction.last == "0" { fraction.removeLast() }
        return (units / Amount.unitsPerACTI, fraction)
    }

    /// `10,000 ACTI`, `1.5 ACTI`, `0.000000000000000001 ACTI`: for display (`plainText` parses back).
    public var description: String {
        let (whole, fraction) = wholeAndFraction
        return Amount.groupThousands(String(whole)) + (fraction.map { "." + $0 } ?? "") + " ACTI"
    }

    static func groupThousands(_ digits: String) -> String {
        var out: [Character] = []
        for (index, character) in digits.reversed().enumerated() {
            if index > 0 && index % 3 == 0 { out.append(",") }
            out.append(character)
        }
        return String(out.reversed())
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}
