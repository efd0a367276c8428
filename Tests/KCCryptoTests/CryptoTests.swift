import KCCodec
import KCCrypto
import Testing

struct Ed25519Tests {
    /// RFC 8032 section 7.1, TEST 1-3: secret key (seed), public key, message, signature.
    static let rfc8032: [(seed: String, publicKey: String, message: String, signature: String)] = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
         "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    @Test(arguments: 0..<3)
    func rfc8032Vectors(index: Int) throws {
        let vector = Self.rfc8032[index]
        let key = SigningKey(seed: try #require(Bytes32(hex: vector.seed)))
        #expect(key.publicKey.hex == vector.publicKey)
        let message = try #require(Hex.decode(vector.message))
        let signature = key.sign(rawMessage: message)
        #expect(signature.hex == vector.signature)
        #expect(key.publicKey.verify(signature: signature, rawMessage: message))
    }

    @Test func tamperedMessageOrSignatureFails() throws {
        let vector = Self.rfc8032[2]
        let publicKey = try #require(PublicKey(hex: vector.publicKey))
        let signature = try #require(Signature(hex: vector.signature))
        #expect(publicKey.verify(signature: signature, rawMessage: [0xaf, 0x82]))
        #expect(!publicKey.verify(signature: signature, rawMessage: [0xaf, 0x83]))
        var flipped = signature.bytes
        flipped[10] ^= 0x01
        #expect(!publicKey.verify(signature: Signature(flipped), rawMessage: [0xaf, 0x82]))
        let otherKey = try #require(PublicKey(hex: Self.rfc8032[0].publicKey))
        #expect(!otherKey.verify(signature: signature, rawMessage: [0xaf, 0x82]))
    }

    @Test func domainAndChainAreBoundIntoTheSignature() {
        let key = SigningKey(seed: Blake2b.hash256(Array("domain-test".utf8)))
        let message: [UInt8] = [1, 2, 3]
        let signature = key.sign(domain: .transaction, chainID: "membria-devnet-1", message: message)
        #expect(key.publicKey.verify(signature: signature, domain: .transaction, chainID: "membria-devnet-1", message: message))
        #expect(!key.publicKey.verify(signature: signature, domain: .transaction, chainID: "membria-devnet-2", message: message))
        #expect(!key.publicKey.verify(signature: signature, domain: .vote, chainID: "membria-devnet-1", message: message))
        #expect(!key.publicKey.verify(signature: signature, rawMessage: message))
    }

    @Test func signingBytesAreTagThenChainThenMessage() {
        let bytes = SigningDomain.vote.signingBytes(chainID: "c", message: [0xaa])
        let tag = Array("membria/vote/v1".utf8)
        #expect(bytes == [UInt8(tag.count)] + tag + [1, UInt8(ascii: "c"), 0xaa])
    }

    @Test func generatedKeysDiffer() {
        #expect(SigningKey.generate().publicKey != SigningKey.generate().publicKey)
    }
}

struct HashTests {
    @Test func blake2b256KnownAnswers() {
        #expect(Blake2b.hash256(Array("abc".utf8)).hex == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")
        #expect(Blake2b.hash256([UInt8]()).hex == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
    }

    @Test func blake2bOfPartsEqualsHashOfJoined() {
        let parts: [[UInt8]] = [Array("a".utf8), [], Array("bc".utf8)]
        #expect(Blake2b.hash256(parts: parts) == Blake2b.hash256(Array("abc".utf8)))
    }

    @Test func sha256KnownAnswers() {
        #expect(SHA256.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hash([UInt8]()).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func bytes32OrdersByteByByte() throws {
        let low = try #require(Bytes32(hex: "00" + String(repeating: "ff", count: 31)))
        let high = try #require(Bytes32(hex: "01" + String(repeating: "00", count: 31)))
        #expect(low < high)
        let a = try #require(Bytes32(hex: String(repeating: "00", count: 31) + "01"))
        let b = try #require(Bytes32(hex: String(repeating: "00", count: 31) + "02"))
        #expect(a < b && !(b < a) && !(a < a))
        #expect(Bytes32(hex: "abcd") == nil)
    }
}

struct ArTxIDTests {
    @Test func roundTripsRandomIds() throws {
        var state: UInt64 = 12345
        for _ in 0..<500 {
            var raw: [UInt8] = []
            for _ in 0..<32 {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                raw.append(UInt8(truncatingIfNeeded: state >> 33))
            }
            let id = ArTxID(Bytes32(raw))
            let text = id.text
            #expect(text.count == 43)
            #expect(!text.contains("+") && !text.contains("/") && !text.contains("="))
            #expect(try ArTxID(parsing: text) == id)
        }
    }

    @Test func knownValue() throws {
        // 32 zero bytes and 32 0xff bytes: the last character carries 4 data bits and 2 zero bits.
        #expect(ArTxID(Bytes32.zero).text == String(repeating: "A", count: 43))
        let allOnes = ArTxID(Bytes32([UInt8](repeating: 0xff, count: 32)))
        #expect(allOnes.text == String(repeating: "_", count: 42) + "8")
        #expect(try ArTxID(parsing: String(repeating: "_", count: 42) + "8") == allOnes)
    }

    @Test func rejectsEachMalformedKind() {
        let valid = String(repeating: "A", count: 43)
        #expect(throws: ArTxID.ParseError.wrongLength(42)) { try ArTxID(parsing: String(valid.dropLast())) }
        #expect(throws: ArTxID.ParseError.wrongLength(44)) { try ArTxID(parsing: valid + "A") }
        #expect(throws: ArTxID.ParseError.padding) { try ArTxID(parsing: String(valid.dropLast()) + "=") }
        #expect(throws: ArTxID.ParseError.invalidCharacter("+", position: 0)) { try ArTxID(parsing: "+" + valid.dropFirst()) }
        #expect(throws: ArTxID.ParseError.invalidCharacter("/", position: 5)) {
            try ArTxID(parsing: "AAAAA/" + valid.dropFirst(6))
        }
        // 'B' = 000001: its low two bits are not zero, so this would be a second spelling of some id.
        #expect(throws: ArTxID.ParseError.nonCanonicalTrailingBits) { try ArTxID(parsing: String(valid.dropLast()) + "B") }
        #expect(throws: ArTxID.ParseError.wrongLength(0)) { try ArTxID(parsing: "") }
    }

    @Test func errorMessagesNameTheProblem() {
        #expect(ArTxID.ParseError.wrongLength(42).description.contains("43"))
        #expect(ArTxID.ParseError.nonCanonicalTrailingBits.description.contains("non-canonical"))
    }

    @Test func encodesAsRawBytes() throws {
        let id = ArTxID(Blake2b.hash256([1]))
        #expect(id.canonicalBytes == id.bytes32.bytes)
        #expect(try ArTxID.decode(exactly: id.canonicalBytes) == id)
    }
}

struct SignatureCacheTests {
    static let key = SigningKey(seed: Blake2b.hash256(Array("cache-test".utf8)))

    /// Verifies once per distinct (key, signature, bytes); failures are never remembered.
    @Test func verifiesEachSignatureOnce() {
        let cache = SignatureCache()
        let message = Array("vote bytes".utf8)
        let signature = Self.key.sign(rawMessage: message)
        #expect(cache.verify(Self.key.publicKey, signature, signedBytes: message))
        #expect(cache.verify(Self.key.publicKey, signature, signedBytes: message))
        #expect(cache.verifications == 1)
        let other = SigningKey(seed: Blake2b.hash256(Array("other".utf8)))
        #expect(!cache.verify(other.publicKey, signature, signedBytes: message), "another key")
        #expect(!cache.verify(Self.key.publicKey, signature, signedBytes: message + [0]), "other bytes")
        #expect(!cache.verify(other.publicKey, signature, signedBytes: message), "a failure is checked again")
        #expect(cache.verifications == 4)
    }

    /// A signature made through the cache is a real Ed25519 signature (the same bytes as a
    /// plain signing), and the cache accepts it without running a verification; the same
    /// signature over other bytes or under another key is still checked and refused.
    @Test func ownSignaturesAreRememberedAsVerified() {
        let cache = SignatureCache()
        let message = Array("own vote".utf8)
        let signature = cache.sign(message, with: Self.key)
        #expect(signature == Self.key.sign(rawMessage: message))
        #expect(Self.key.publicKey.verify(signature: signature, rawMessage: message))
        #expect(cache.verify(Self.key.publicKey, signature, signedBytes: message))
        #expect(cache.verifications == 0)
        #expect(!cache.verify(Self.key.publicKey, signature, signedBytes: message + [1]))
        #expect(cache.verifications == 1)
    }
}

/// Secrets sealed under a passphrase (encrypted key files).
struct PassphraseBoxTests {
    let secret = Array(0..<32 as Range<UInt8>)

    @Test func sealsAndOpensOnlyWithThePassphrase() throws {
        let box = try PassphraseBox.seal(secret, passphrase: "correct horse", cost: .minimum)
        #expect(box.ciphertext.count == 32 + PassphraseBox.tagBytes)
        #expect(!box.ciphertext.starts(with: secret), "the secret is not in the clear")
        #expect(try box.open(passphrase: "correct horse") == secret)
        #expect(throws: PassphraseBox.Failure.wrongPassphraseOrDamaged) { try box.open(passphrase: "correct horsE") }
        // Two seals of one secret differ (fresh salt and nonce).
        let again = try PassphraseBox.seal(secret, passphrase: "correct horse", cost: .minimum)
        #expect(again.salt != box.salt && again.ciphertext != box.ciphertext)
    }

    @Test func aChangedBoxDoesNotOpen() throws {
        let box = try PassphraseBox.seal(secret, passphrase: "p", cost: .minimum)
        var flipped = box.ciphertext
        flipped[3] ^= 1
        #expect(throws: PassphraseBox.Failure.wrongPassphraseOrDamaged) {
            try PassphraseBox(cost: box.cost, salt: box.salt, nonce: box.nonce, ciphertext: flipped).open(passphrase: "p")
        }
        var salt = box.salt
        salt[0] ^= 1
        #expect(throws: PassphraseBox.Failure.wrongPassphraseOrDamaged) {
            try PassphraseBox(cost: box.cost, salt: salt, nonce: box.nonce, ciphertext: box.ciphertext).open(passphrase: "p")
        }
        // A cost no one should have to pay to open a file (an edited file) is refused unrun.
        let greedy = PassphraseBox(cost: .init(operations: 3, memoryBytes: 1 << 40), salt: box.salt, nonce: box.nonce, ciphertext: box.ciphertext)
        #expect(throws: PassphraseBox.Failure.self) { try greedy.open(passphrase: "p") }
        let short = PassphraseBox(cost: box.cost, salt: [1, 2], nonce: box.nonce, ciphertext: box.ciphertext)
        #expect(throws: PassphraseBox.Failure.self) { try short.open(passphrase: "p") }
    }
}
