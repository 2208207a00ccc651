"""One module per `fedledger` command; each only wires options to the core and the roles and
prints. `fedledger.cli` puts them together; `errors` says how user mistakes end."""
