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
        case notANumber(String)
        case tooManyDecimals(String)
        case tooLarge(String)

        public var description: String {
            switch self {
            case .empty: return "an amount is required"
            case .notANumber(let text): return "'\(text)' is not an amount (write e.g. 10000ACTI, 1.5ACTI or a whole number of base units)"
            case .tooManyDecimals(let text): return "'\(text)' has more than 18 decimal places (1 ACTI = 10^18 units)"
            case .tooLarge(let text): return "'\(text)' is too large"
            }
        }
    }

    /// Parses `10000ACTI`, `10000 ACTI`, `1.5ACTI`, `10,000ACTI` or a whole number of base units (`123`).
    public init(parsing text: String) throws(ParseError) {
        var body = Substring(text.trimmingWhitespace())
        guard !body.isEmpty else { throw .empty }
        var isACTI = false
        if body.uppercased().hasSuffix("ACTI") {
            isACTI = true
            body = body.dropLast(4)
            while body.last == " " { body = body.dropLast() }
        }
        let digitsOnly = body.filter { $0 != "," && $0 != "_" }
        guard !digitsOnly.isEmpty else { throw .notANumber(text) }
        let parts = digitsOnly.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let wholePart = parts.first, !wholePart.isEmpty,
              wholePart.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw .notANumber(text) }
        let fractionPart = parts.count == 2 ? parts[1] : ""
        guard fractionPart.allSatisfy({ $0.isASCII && $0.isNumber }) else { throw .notANumber(text) }
        if parts.count == 2 && (fractionPart.isEmpty || !isACTI) { throw .notANumber(text) }
        guard fractionPart.count <= 18 else { throw .tooManyDecimals(text) }
        guard let whole = UInt128(wholePart) else { throw .tooLarge(text) }
        if !isACTI {
            units = whole
            return
        }
        let paddedFraction = fractionPart + String(repeating: "0", count: 18 - fractionPart.count)
        let fraction = UInt128(paddedFraction)!
        let (scaled, overflowMultiply) = whole.multipliedReportingOverflow(by: Amount.unitsPerACTI)
        let (total, overflowAdd) = scaled.addingReportingOverflow(fraction)
        guard !overflowMultiply && !overflowAdd else { throw .tooLarge(text) }
        units = total
    }

    /// `10,000 ACTI`, `1.5 ACTI`, `0.000000000000000001 ACTI`.
    public var description: String {
        let whole = units / Amount.unitsPerACTI
        let remainder = units % Amount.unitsPerACTI
        var text = Amount.groupThousands(String(whole))
        if remainder != 0 {
            var fraction = String(remainder)
            fraction = String(repeating: "0", count: 18 - fraction.count) + fraction
            while fraction.last == "0" { fraction.removeLast() }
            text += "." + fraction
        }
        return text + " ACTI"
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
