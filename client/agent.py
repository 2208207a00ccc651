"""The data-owner agent: a thin loop over the chain's state machine.

Each `step()` reads the chain, does the one thing that is due for this data owner, and returns.
Nothing is kept that the chain and storage do not hold: training is seeded from (task, round,
owner) and the commit salt is derived from a deterministic signature, so an agent killed at any
point and restarted redoes exactly what it had not finished, and never acts twice (the contract
rejects duplicates).

    register -> [train -> commit model -> upload -> reveal model] -> [validate peers -> commit -> reveal] -> withdraw

A model is committed (a hash of its CIDs, digest and sample count, bound to this owner's address
and a secret salt) before anyone's is revealed, so nobody can copy a model it has not seen; its
CIDs are computed locally and the files uploaded only when it is revealed, after every commitment
is in, so not even the storage network holds it before then.

A copycat (attack ``copycat``) sees no model of the round before the reveals: it commits to a
peer's commitment, then reveals the peer's revealed model as its own, exactly or plus small noise.
The contract refuses both (the commitment names the peer), so a copycat never submits.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch

from fedledger.core.attacks import Attack, Copycat, create_attack
from fedledger.core.chain import (
    ContractRevert,
    FedLedger,
    Phase,
    RoundInfo,
    TaskStatus,
    TransactionFailed,
    bits,
    encode_scores,
    model_commitment,
    score_commitment,
)
from fedledger.core.chain.accounts import owner_secret
from fedledger.core.chain.transport import request
from fedledger.core.learning.behaviour import behaviour_model
from fedledger.core.learning.privacy import create_accountant
from fedledger.core.learning.training import account_past_rounds, train_local
from fedledger.core.models import StateDict, create_model
from fedledger.core.protocol import rules
from fedledger.core.protocol.rounds import BadInput, fetch_weights, task_config
from fedledger.core.protocol.validation import peer_score, validation_targets
from fedledger.core.storage import DaemonUnavailable, Store
from fedledger.core.storage.cid import compute_cid
from fedledger.core.weights import WeightsMeta, dumps, sha256_hex

log = logging.getLogger(__name__)

# reverts that only mean "too late": the phase closed or moved on while this agent was working
_RACES = {
    f"FedLedger{name}"
    for name in ("DeadlinePassed", "WrongPhase", "AlreadySubmitted", "AlreadyCommitted", "AlreadyRevealed")
}


@dataclass(frozen=True)
class LocalModel:
    """A trained model: what is committed to (CIDs, digest, samples; behaviour CID "" for none)
    and the files behind them, uploaded when the model is revealed."""

    weights_cid: str
    digest: bytes
    behaviour_cid: str
    n_samples: int
    weights: bytes
    behaviour: bytes

    @property
    def public(self) -> tuple[str, bytes, str, int]:
        return self.weights_cid, self.digest, self.behaviour_cid, self.n_samples


class ClientAgent:
    """Data owner `data_owner` of task `task_id`, acting through `ledger` (its own account)."""

    def __init__(
        self,
        ledger: FedLedger,
        store: Store,
        task_id: int,
        data_owner: int,
        *,
        attack: str | None = None,
        accomplices: frozenset[str] = frozenset(),
        n_malicious: int = 1,
        dp: str | None = None,
    ) -> None:
        self.ledger, self.store, self.task_id, self.k = ledger, store, task_id, data_owner
        self.address = ledger.sender
        self.cfg = task_config(ledger, task_id)
        data = self.cfg.client_data(data_owner)  # private: never leaves this agent
        self.attack: Attack = create_attack(attack)
        self.attack.setup(n_clients=self.cfg.clients, n_malicious=n_malicious)
        self.accomplices = frozenset(a.lower() for a in accomplices)  # colluding owners' addresses
        gen = torch.Generator().manual_seed(rules.data_poison_seed(self.cfg.seed, data_owner))
        self.x, self.y = self.attack.poison_data(data.x_train, data.y_train, gen)
        self.x_val, self.y_val = data.x_val, data.y_val
        ds = self.cfg.data()
        self.model = create_model(self.cfg.model, in_shape=tuple(ds.input_shape), num_classes=ds.num_classes)
        # the task's GD-DP; an owner may choose its own mechanism (e.g. stronger privacy)
        self.dp = (replace(self.cfg, dp=dp) if dp else self.cfg).dp_config()
        self.accountant = create_accountant(self.dp.mechanism) if self.dp else None
        self.epsilon: float | None = None
        if self.dp and self.accountant is not None:  # privacy already spent before a restart
            trained = len(ledger.events("ModelCommitted", taskId=task_id, client=self.address))
            account_past_rounds(self.accountant, self.dp, len(self.x), self.cfg.train_config(), trained)
        self._scores: dict[int, bytes] = {}  # round -> packed scores (a cache: recomputable)
        self._models: dict[int, LocalModel] = {}  # round -> trained model (a cache: recomputable)
        self._refused: set[int] = set()  # rounds whose copy the contract refused (copycat only)
        self._index: int | None = None  # this owner's index in the task, once registered

    # ---- the loop ----------------------------------------------------------------------------
    def step(self) -> str:
        """Do what is due now; returns what was done ("idle" when waiting, "done" at the end)."""
        try:
            return self._step()
        except (ContractRevert, TransactionFailed) as exc:
            # The chain moved on between reading it and acting (a deadline passed, another
            # party closed the phase): the next step reads the new state. Nothing is lost.
            if isinstance(exc, ContractRevert) and exc.name not in _RACES:
                raise
            log.warning("client %d: %s", self.k, exc)
            return "idle"

    def _step(self) -> str:
        info = self.ledger.task_info(self.task_id)
        status = info["status"]
        if status == TaskStatus.CANCELLED:
            return "done"
        if self._index is None:  # registration is permanent: read it until it is there, then keep it
            me = self.ledger.client_info(self.task_id, self.address)
            if not me["registered"]:
                if status in (TaskStatus.OPEN, TaskStatus.RUNNING):
                    self.register()
                    return "registered"
                return "done"
            self._index = int(me["index"])
        if status == TaskStatus.FINISHED:
            if self.ledger.credit_of(self.address) > 0:
                self.ledger.withdraw()
                return "withdrew"
            return "done"
        if status != TaskStatus.RUNNING:
            return "idle"
        r = info["current_round"]
        ri = self.ledger.round_info(self.task_id, r)
        bit = 1 << self._index
        if isinstance(self.attack, Copycat):
            if ri.phase == Phase.TRAIN and ri.selected & bit and not ri.models_committed & bit:
                return self._copy_commitment(r)
            if (
                ri.phase == Phase.SUBMIT
                and ri.models_committed & bit
                and not ri.submitted & bit
                and r not in self._refused
            ):
                return self._copy_model(r)
            return "idle"
        if ri.phase == Phase.TRAIN and ri.selected & bit and not ri.models_committed & bit:
            return self.train_and_commit(r) if self._may_train(r, ri) else "idle"
        if ri.phase == Phase.SUBMIT and ri.models_committed & bit and not ri.submitted & bit:
            return self.submit(r)
        if ri.phase == Phase.COMMIT and ri.submitted & bit and not ri.committed & bit:
            self.ledger.commit_scores(self.task_id, r, self._commitment(r, ri))
            return f"committed r{r}"
        if ri.phase == Phase.REVEAL and ri.committed & bit and not ri.revealed & bit:
            self.ledger.reveal_scores(self.task_id, r, self._scores_for(r, ri), self._salt(r))
            return f"revealed r{r}"
        return "idle"

    # ---- actions -----------------------------------------------------------------------------
    def register(self) -> None:
        """Self-assessment (LL-BCFL): data size relative to an even share, quality, category."""
        assessment = rules.self_assessment(len(self.x), len(self.cfg.data().y_train), self.cfg.clients)
        self.ledger.register(self.task_id, list(assessment), len(self.x))

    def train_and_commit(self, r: int) -> str:
        """Train and commit to the model (uploaded and revealed in the submit phase)."""
        model = self._model_for(r)
        salt = self._secret("model salt", r)
        commitment = model_commitment(self.task_id, r, self.address, *model.public, salt)
        self.ledger.commit_model(self.task_id, r, commitment)
        return f"committed model r{r}"

    def submit(self, r: int) -> str:
        """Upload and reveal the committed model. After a restart the (seeded, deterministic)
        training is redone, without counting its privacy spend twice."""
        if r not in self._models:
            accountant, epsilon, self.accountant = self.accountant, self.epsilon, None
            try:
                self._models[r] = self._train(r)
            finally:
                self.accountant, self.epsilon = accountant, epsilon
        model = self._models[r]
        stored = self.store.put(model.weights), self.store.put(model.behaviour) if model.behaviour_cid else ""
        if stored != (model.weights_cid, model.behaviour_cid):
            raise RuntimeError(f"the store named the model {stored}, not the CIDs committed to: check its CID settings")
        try:
            salt = self._secret("model salt", r)
            self.ledger.submit_model(self.task_id, r, *model.public, salt)
        except ContractRevert as exc:
            if exc.name != "FedLedgerCommitmentMismatch":
                raise
            log.warning(
                "client %d: the model retrained after a restart differs from the committed one: "
                "round %d goes on without it",
                self.k,
                r,
            )
            return "idle"
        return f"submitted r{r}"

    def _model_for(self, r: int) -> LocalModel:
        if r not in self._models:
            self._models[r] = self._train(r)
        return self._models[r]

    def _copy_commitment(self, r: int) -> str:
        """Copycat, train phase: no model of the round is visible yet, only the commitments;
        it copies the first honest peer's."""
        theirs = [
            e for e in self.ledger.events("ModelCommitted", taskId=self.task_id, round=r) if self._victim(e["client"])
        ]
        if not theirs:
            return "idle"
        self.ledger.commit_model(self.task_id, r, bytes(theirs[0]["commitment"]))
        return f"committed model r{r}"

    def _copy_model(self, r: int) -> str:
        """Copycat, submit phase: reveals the first honest peer's revealed model as its own,
        exactly (the peer's CIDs, digest and salt, read from its reveal), or plus small noise
        under its own name. The contract refuses both: the copied commitment names the peer."""
        theirs = [s for s in self.ledger.submissions(self.task_id, r) if self._victim(s.client)]
        if not theirs:
            return "idle"
        victim = theirs[0]
        assert isinstance(self.attack, Copycat)
        if self.attack.noise == 0:
            tx = request(self.ledger.w3, "eth_getTransactionByHash", [victim.tx_hash])
            decoded = self.ledger.decode_input(tx["input"])
            salt = bytes(decoded[1]["salt"]) if decoded else self._secret("model salt", r)
            reveal = (victim.weights_cid, victim.digest, victim.behaviour_cid, victim.n_samples, salt)
        else:
            cid, digest = self.ledger.global_model(self.task_id)
            global_w, _ = fetch_weights(self.store, cid, digest, expected=None)
            weights, _ = fetch_weights(self.store, victim.weights_cid, victim.digest, expected=None)
            update = OrderedDict((k, weights[k] - global_w[k]) for k in global_w)
            gen = torch.Generator().manual_seed(rules.weights_poison_seed(self.cfg.seed, r, self.k))
            copy = self.attack.poison_weights(global_w, weights, honest_updates=[update], gen=gen)
            pace = behaviour_model(global_w, copy, self.cfg.lr, 1).pace
            meta = WeightsMeta(model_spec=self.cfg.model_spec(), task=str(self.task_id), round=r, producer=self.address)
            data = dumps(copy, meta)
            reveal = (
                self.store.put(data),
                bytes.fromhex(sha256_hex(data)),
                self.store.put(dumps(pace, meta)),
                victim.n_samples,
                self._secret("model salt", r),
            )
        try:
            self.ledger.submit_model(self.task_id, r, *reveal)
        except ContractRevert as exc:
            if exc.name != "FedLedgerCommitmentMismatch":
                raise
            log.warning(
                "client %d: the contract refused the copy of client %d's model in round %d", self.k, victim.index, r
            )
            self._refused.add(r)
            return f"copy refused r{r}"
        return f"submitted r{r}"

    def _victim(self, client: str) -> bool:
        """An honest peer: neither this owner nor an accomplice."""
        return client.lower() != self.address.lower() and client.lower() not in self.accomplices

    def _train(self, r: int) -> LocalModel:
        cid, digest = self.ledger.global_model(self.task_id)
        try:
            global_w, _ = fetch_weights(self.store, cid, digest, expected=None)
        except BadInput:
            if not self.store.has(cid):
                # The chain recorded this model, so its holders have it: our node cannot reach
                # them now (a cut link). Wait and retry as for a node outage, do not give up.
                raise DaemonUnavailable(f"global model {cid} is not reachable from this node now") from None
            raise
        cfg = self.cfg.train_config()
        steps = cfg.local_steps or cfg.local_epochs * math.ceil(len(self.x) / cfg.batch_size)
        if self.attack.trains:
            res = train_local(
                self.model,
                global_w,
                self.x,
                self.y,
                cfg,
                dp=self.dp,
                accountant=self.accountant,
                seed=rules.training_seed(self.cfg.seed, r, self.k),
                noise_secret=self._secret("dp noise", r) if self.dp else None,
            )
            weights, steps, self.epsilon = res.weights, res.local_steps, res.epsilon
        else:
            weights = OrderedDict((k, v.clone()) for k, v in global_w.items())
        weights = self.attack.poison_weights(
            global_w,
            weights,
            honest_updates=self._honest_updates(r, global_w) if self.attack.needs_honest_updates else None,
            gen=torch.Generator().manual_seed(rules.weights_poison_seed(self.cfg.seed, r, self.k)),
        )
        pace = behaviour_model(global_w, weights, self.cfg.lr, steps).pace
        meta = WeightsMeta(model_spec=self.cfg.model_spec(), task=str(self.task_id), round=r, producer=self.address)
        data, behaviour = dumps(weights, meta), dumps(pace, meta)
        return LocalModel(
            compute_cid(data), bytes.fromhex(sha256_hex(data)), compute_cid(behaviour), len(self.x), data, behaviour
        )

    # ---- helpers -----------------------------------------------------------------------------
    def _may_train(self, r: int, ri) -> bool:
        """Attacks that need the honest updates (ALIE, IPM) wait until the honest peers submitted."""
        if not self.attack.needs_honest_updates:
            return True
        mates = self._accomplice_indices()
        honest = [i for i in range(ri.n_clients) if ri.selected >> i & 1 and i not in mates and i != self._index]
        done = {s.index for s in self.ledger.submissions(self.task_id, r)}
        late = time.time() > ri.deadline - self.cfg.train_s / 4
        return set(honest) <= done or late

    def _accomplice_indices(self) -> set[int]:
        """Chain indexes (registration order, which need not follow data-owner numbers) of the accomplices."""
        if not self.accomplices:
            return set()
        return {i for i, a in enumerate(self.ledger.clients(self.task_id)) if a.lower() in self.accomplices}

    def _honest_updates(self, r: int, global_w: StateDict) -> list[StateDict]:
        out = []
        mates = self._accomplice_indices()
        for s in self.ledger.submissions(self.task_id, r):
            if s.index in mates or s.index == self._index:
                continue
            try:
                w, _ = fetch_weights(self.store, s.weights_cid, s.digest, expected=None)
            except BadInput:
                continue
            out.append(OrderedDict((key, w[key] - global_w[key]) for key in global_w))
        return out

    def _scores_for(self, r: int, ri: RoundInfo) -> bytes:
        """Validate the peers' models this owner is to score (every peer, or those the round seed
        assigns) on its held-out data (bps); 0 for unusable models and for peers not assigned."""
        if r in self._scores:
            return self._scores[r]
        me = self._index
        if me is None:
            raise RuntimeError("scores asked for before this owner's registration was read")
        subs = self.ledger.submissions(self.task_id, r)
        targets = validation_targets(bits(ri.submitted), self.cfg.peer_validators, ri.seed).get(me, [])
        scores = {}
        for s in subs:
            if s.index not in targets:
                continue
            try:
                w, _ = fetch_weights(self.store, s.weights_cid, s.digest, expected=dict(self.model.state_dict()))
                scores[s.index] = peer_score(self.model, w, self.x_val, self.y_val)
            except BadInput as exc:
                log.info("client %d: peer %d unusable in round %d: %s", self.k, s.index, r, exc)
                scores[s.index] = 0
        scores = self.attack.poison_scores(scores, self_id=me, accomplices=self._accomplice_indices())
        packed = encode_scores([scores.get(i, 0) for i in range(ri.n_clients)])
        self._scores[r] = packed
        return packed

    def _secret(self, purpose: str, r: int) -> bytes:
        """Secret and recomputable after a restart: hash of a deterministic (RFC 6979) signature
        with this owner's key. Nothing public (chain, storage, task config) yields it."""
        assert self.ledger.account is not None, "a data owner's ledger binding has its account"
        return owner_secret(self.ledger.account, purpose, self.task_id, r)

    def _salt(self, r: int) -> bytes:
        return self._secret("score salt", r)

    def _commitment(self, r: int, ri: RoundInfo) -> bytes:
        return score_commitment(self.task_id, r, self.address, self._scores_for(r, ri), self._salt(r))
