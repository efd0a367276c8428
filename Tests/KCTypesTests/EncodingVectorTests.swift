import Foundation
import KCCodec
import KCCrypto
import KCTypes
import Testing

/// Reads the vector tables out of specs/encoding.md and checks them against the codec both
/// ways, so the spec and the code cannot disagree.
struct EncodingVectorTests {
    static let specLimit = 16

    /// A decoded value in a form the test can compare, whatever its type.
    enum Value: Equatable, CustomStringConvertible {
        case integer(UInt128)
        case bool(Bool)
        case bytes([UInt8])
        case string(String)
        case list([UInt32])
        case optional(UInt64?)
        case verdict(Verdict)

        var description: String {
            switch self {
            case .integer(let value): return "\(value)"
            case .bool(let value): return "\(value)"
            case .bytes(let value): return "hex:" + Hex.encode(value)
            case .string(let value): return "\"\(value)\""
            case .list(let value): return "\(value)"
            case .optional(let value): return value.map { "\($0)" } ?? "none"
            case .verdict(let value): return "\(value)"
            }
        }
    }

    static func specText() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("specs/encoding.md"), encoding: .utf8)
    }

    /// Rows of the fenced block with the given info string.
    static func rows(block: String) throws -> [[String]] {
        let text = try specText()
        guard let start = text.range(of: "```\(block)\n") else { return [] }
        let rest = text[start.upperBound...]
        guard let end = rest.range(of: "```") else { return [] }
        return rest[..<end.lowerBound].split(separator: "\n").map { line in
            line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    static func parseValue(type: String, text: String) throws -> Value {
        switch type {
        case "u8", "u16", "u32", "u64", "u128", "varint":
            return .integer(try #require(UInt128(text)))
        case "bool":
            return .bool(text == "true")
        case "bytes", "bytes32":
            #expect(text.hasPrefix("hex:"))
            return .bytes(try #require(Hex.decode(text.dropFirst(4))))
        case "string":
            return .string(String(text.dropFirst().dropLast()))
        case "list<u32>":
            let inner = text.dropFirst().dropLast()
            return .list(inner.isEmpty ? [] : inner.split(separator: ",").map { UInt32($0)! })
        case "option<u64>":
            return .optional(text == "none" ? nil : UInt64(text)!)
        case "amount":
            return .integer(try Amount(parsing: text).units)
        case "verdict":
            return .verdict(text == "valid" ? .valid : .invalid)
        default:
            Issue.record("unknown vector type \(type)")
            return .bool(false)
        }
    }

    static func encode(_ value: Value, type: String) -> [UInt8] {
        var writer = CanonicalWriter()
        switch (type, value) {
        case ("u8", .integer(let v)): writer.write(UInt8(v))
        case ("u16", .integer(let v)): writer.write(UInt16(v))
        case ("u32", .integer(let v)): writer.write(UInt32(v))
        case ("u64", .integer(let v)): writer.write(UInt64(v))
        case ("u128", .integer(let v)): writer.write(v)
        case ("varint", .integer(let v)): writer.writeVarint(UInt32(v))
        case ("bool", .bool(let v)): writer.write(v)
        case ("bytes", .bytes(let v)): writer.writeBytes(v)
        case ("bytes32", .bytes(let v)): writer.write(Bytes32(v))
        case ("string", .string(let v)): writer.writeString(v)
        case ("list<u32>", .list(let v)): writer.writeList(v)
        case ("option<u64>", .optional(let v)): writer.writeOptional(v)
        case ("amount", .integer(let v)): writer.write(Amount(units: v))
        case ("verdict", .verdict(let v)): writer.write(v)
        default: Issue.record("cannot encode \(value) as \(type)")
        }
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8], type: String) throws(DecodingError) -> Value {
        var reader = CanonicalReader(bytes)
        let value: Value
        switch type {
        case "u8": value = .integer(UInt128(try reader.readUInt8()))
        case "u16": value = .integer(UInt128(try reader.readUInt16()))
        case "u32": value = .integer(UInt128(try reader.readUInt32()))
        case "u64": value = .integer(UInt128(try reader.readUInt64()))
        case "u128": value = .integer(try reader.readUInt128())
        case "varint": value = .integer(UInt128(try reader.readVarint()))
        case "bool": value = .bool(try reader.readBool())
        case "bytes": value = .bytes(try reader.readBytes("bytes", limit: specLimit))
        case "bytes32": value = .bytes(try reader.read(Bytes32.self).bytes)
        case "string": value = .string(try reader.readString("string", limit: specLimit))
        case "list<u32>": value = .list(try reader.readList(UInt32.self, "list", limit: specLimit))
        case "option<u64>": value = .optional(try reader.readOptional(UInt64.self, "option"))
        case "amount": value = .integer(try reader.read(Amount.self).units)
        case "verdict": value = .verdict(try reader.read(Verdict.self))
        default: fatalError("unknown vector type \(type)")
        }
        try reader.finish()
        return value
    }

    static func errorKind(_ error: DecodingError) -> String {
        switch error {
        case .truncated: return "truncated"
        case .trailingBytes: return "trailingBytes"
        case .nonCanonical: return "nonCanonical"
        case .unknownTag: return "unknownTag"
        case .overLimit: return "overLimit"
        case .invalidValue: return "invalidValue"
        }
    }

    @Test func specHasVectors() throws {
        #expect(try Self.rows(block: "vectors").count >= 20)
        #expect(try Self.rows(block: "rejections").count >= 10)
    }

    @Test func vectorsEncodeAndDecodeBothWays() throws {
        for row in try Self.rows(block: "vectors") {
            try #require(row.count == 4, "malformed vector row \(row)")
            let (name, type, valueText, hex) = (row[0], row[1], row[2], row[3])
            let value = try Self.parseValue(type: type, text: valueText)
            let expected = try #require(Hex.decode(hex), "bad hex in vector \(name)")
            #expect(Hex.encode(Self.encode(value, type: type)) == hex, "encoding of vector \(name)")
            #expect(try Self.decode(expected, type: type) == value, "decoding of vector \(name)")
        }
    }

    @Test func rejectionsGiveTheirError() throws {
        for row in try Self.rows(block: "rejections") {
            try #require(row.count == 4, "malformed rejection row \(row)")
            let (name, type, hex, expectedKind) = (row[0], row[1], row[2], row[3])
            let bytes = try #require(Hex.decode(hex), "bad hex in rejection \(name)")
            do {
                let value = try Self.decode(bytes, type: type)
                Issue.record("rejection \(name) decoded to \(value)")
            } catch {
                #expect(Self.errorKind(error) == expectedKind, "rejection \(name): got \(error)")
            }
        }
    }
}
