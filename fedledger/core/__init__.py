"""The core layer: chain access, storage, weights, data, models, learning, protocol rules,
defences and attacks. It imports nothing from the roles (`fedledger.client`, `fedledger.miner`,
`fedledger.deploy`, `fedledger.requester`) or from orchestration (see docs/design.md)."""
