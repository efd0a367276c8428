import KCCodec
import KCCrypto
import KCTypes

// The validator and gateway registries: paged lists in which joining appends to the last page
// and leaving moves the last member into the leaver's place. Each member's record keeps its
// position (`ValidatorRecord.registry_index`, `GatewayRecord.registry_index`), so both are a
// page write or two, whatever the registry's size.
extension BlockExecutor {
    func registryCount(_ registry: Registry) -> UInt32 {
        registry == .validators ? global.validatorCount : global.gatewayCount
    }

    mutating func setRegistryCount(_ registry: Registry, _ count: UInt32) {
        if registry == .validators { global.validatorCount = count } else { global.gatewayCount = count }
    }

    func registryPage(_ registry: Registry, _ page: UInt64) -> RegistryPage {
        state.read(RegistryPage.self, StateKey.registryPage(registry, page)) ?? RegistryPage()
    }

    /// Appends `address`; returns its position. Fails with the registry's own code when full.
    mutating func registryAppend(_ registry: Registry, _ address: PublicKey) throws(CallError) -> UInt32 {
        let count = registryCount(registry)
        guard count < registry.capacity else {
            throw CallError(registry == .validators ? .validatorRegistryFull : .gatewayRegistryFull,
                            "the \(registry.name) registry holds its maximum of \(registry.capacity) members")
        }
        let page = UInt64(count) / UInt64(RegistryPage.capacity)
        var keys = registryPage(registry, page)
        keys.keys.append(address)
        precondition(keys.keys.count == Int(UInt64(count) % UInt64(RegistryPage.capacity)) + 1, "registry page out of step with its count")
        state.write(StateKey.registryPage(registry, page), keys)
        setRegistryCount(registry, count + 1)
        return count
    }

    /// Removes the member at `position`; the last member takes its place. Returns that moved
    /// member (whose record the caller updates with `position`), or nil if the removed one was last.
    mutating func registryRemove(_ registry: Registry, at position: UInt32, expected address: PublicKey) -> PublicKey? {
        let count = registryCount(registry)
        precondition(position < count, "registry position \(position) beyond count \(count)")
        let perPage = UInt64(RegistryPage.capacity)
        let lastPosition = count - 1
        let lastPageNumber = UInt64(lastPosition) / perPage
        var lastPage = registryPage(registry, lastPageNumber)
        guard let last = lastPage.keys.popLast() else { preconditionFailure("registry page \(lastPageNumber) is empty") }
        var moved: PublicKey? = nil
        if position != lastPosition {
            let pageNumber = UInt64(position) / perPage
            let slot = Int(UInt64(position) % perPage)
            if pageNumber == lastPageNumber {
                precondition(lastPage.keys[slot] == address, "registry position does not hold the member")
                lastPage.keys[slot] = last
            } else {
                var page = registryPage(registry, pageNumber)
                precondition(page.keys[slot] == address, "registry position does not hold the member")
                page.keys[slot] = last
                state.write(StateKey.registryPage(registry, pageNumber), page)
            }
            moved = last
        } else {
            precondition(last == address, "registry position does not hold the member")
        }
        if lastPage.keys.isEmpty {
            state.delete(StateKey.registryPage(registry, lastPageNumber))
        } else {
            state.write(StateKey.registryPage(registry, lastPageNumber), lastPage)
        }
        setRegistryCount(registry, lastPosition)
        return moved
    }

    /// Every member, page by page (registration order, as changed by removals).
    func registryMembers(_ registry: Registry) -> [PublicKey] {
        state.registryMembers(registry, count: registryCount(registry))
    }
}

extension StateReading {
    /// The members of a registry holding `count` members, in position order.
    func registryMembers(_ registry: Registry, count: UInt32) -> [PublicKey] {
        var members: [PublicKey] = []
        members.reserveCapacity(Int(count))
        let pages = (UInt64(count) + UInt64(RegistryPage.capacity) - 1) / UInt64(RegistryPage.capacity)
        for page in 0..<pages {
            guard let keys = record(RegistryPage.self, StateKey.registryPage(registry, page)) else {
                preconditionFailure("registry page \(page) missing below count \(count)")
            }
            members += keys.keys
        }
        precondition(members.count == Int(count), "registry pages hold \(members.count) members, count is \(count)")
        return members
    }
}
