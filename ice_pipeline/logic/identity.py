"""Identity resolution: which staging rows and existing persons are one person (DESIGN §4).

Input is one frame of *nodes* in a fixed order: the existing production
persons that share a key with the batch first, then the staging rows in
arrival order (updated_at, table, id). Each node carries its match keys.

Keys are applied strongest first -- an earlier link of the same staging row,
cédula, student number, e-mail, (name key + birth date), (name key + mobile) -- and nodes
sharing a key are joined, unless the join is *vetoed*: the clusters it would
join disagree on a stronger identifier (two cédulas; two e-mails or two
birth dates below the e-mail level), or it would join two existing persons
(the pipeline never merges production persons). Chains are checked as a
whole, so no chain of matches joins two cédulas.

A vetoed join keeps the clusters apart. A staging-only cluster that could
join more than one of them (ambiguous), or that carries an e-mail already
owned by a person with another cédula, goes to review instead of being
merged or created: it is not lost, it waits for a person.

The common case -- no disagreement in a connected group -- is resolved
vectorised; only the rare conflicting groups take the exact slow path.
A cluster's anchor is its first node, so the result depends only on node
order, never on staging ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

KEY_COLUMNS = ("cedula", "student_number", "email", "name_key", "birth_date", "mobile")

# (matched_by name, key columns, stronger identifiers that veto a join at this level)
# `same_source_row`: a lead row re-imported from the same file, sheet and row,
# with the same name, belongs to the person of the lead first seen there (it
# lets rows with no identifier at all be re-imported without duplicating).
# The student number is ICE's own identifier of a student: as strong as a
# cédula for the rows that carry it (staging students; existing persons
# through their student).
LEVELS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("linked", ("linked_person_id",), ()),
    ("same_source_row", ("source_row_person_id",), ()),
    ("cedula", ("cedula",), ()),
    ("student_number", ("student_number",), ("cedula",)),
    ("email", ("email",), ("cedula", "student_number")),
    ("name_birth_date", ("name_key", "birth_date"), ("cedula", "student_number", "email")),
    ("name_phone", ("name_key", "mobile"), ("cedula", "student_number", "email", "birth_date")),
)

EMAIL_TAKEN = "e-mail belongs to another person with a different cédula"
AMBIGUOUS = "matches more than one person that cannot be the same ({level})"


@dataclass
class Resolution:
    """Per node: its cluster anchor, how it matched, and whether it waits in review."""

    anchor: np.ndarray  # node index of the cluster's first node
    matched_by: np.ndarray  # object: level name, 'new' for a new person's first row, None for existing nodes
    in_review: np.ndarray  # bool: staging node sent to review (identity_conflict)
    review_reason: np.ndarray  # object
    review_candidate: np.ndarray  # int: node index of the closest candidate's anchor, -1 when none
    review_level: np.ndarray  # object
    stats: dict[str, int] = field(default_factory=dict)
    # (existing anchor, other existing anchor, staging node that ties them, level): two persons
    # already in production that a row shows to be one person. Never merged here: a person decides.
    possible_duplicates: list[tuple[int, int, int, str]] = field(default_factory=list)

    @classmethod
    def unresolved(cls, n: int) -> Resolution:
        """Every node its own cluster, nothing matched, nothing in review."""
        return cls(
            np.arange(n),
            np.full(n, None, dtype=object),
            np.zeros(n, dtype=bool),
            np.full(n, None, dtype=object),
            np.full(n, -1, dtype=np.int64),
            np.full(n, None, dtype=object),
            {"slow_components": 0, "vetoed_joins": 0},
        )


def _level_pairs(
    nodes: pd.DataFrame, columns: tuple[str, ...], anchor: np.ndarray, live: np.ndarray
) -> pd.DataFrame:
    """(anchor, key) pairs of a level for the live nodes.

    Single-column levels use each node's own key. Combined levels (name +
    birth date, name + mobile) combine every name key of a *cluster* with
    every birth date / mobile of that cluster: a person known by cédula from
    one row with the full name and another with the birth date is found by a
    third row carrying both, in one batch exactly as across increments.
    """
    idx = np.flatnonzero(live)
    parts = [nodes[c].astype("string").to_numpy(dtype=object, na_value=None)[idx] for c in columns]
    if len(columns) == 1:
        frame = pd.DataFrame({"anchor": anchor[idx], "key": parts[0]}).dropna()
    else:
        left = pd.DataFrame({"anchor": anchor[idx], "a": parts[0]}).dropna().drop_duplicates()
        right = pd.DataFrame({"anchor": anchor[idx], "b": parts[1]}).dropna().drop_duplicates()
        frame = left.merge(right, on="anchor")
        frame = pd.DataFrame(
            {"anchor": frame["anchor"].to_numpy(), "key": (frame["a"] + "\x1f" + frame["b"]).to_numpy()}
        )
    return frame.drop_duplicates().sort_values(["anchor", "key"], kind="stable").reset_index(drop=True)


def cluster_name_keys(nodes: pd.DataFrame, anchor: np.ndarray, in_review: np.ndarray) -> pd.DataFrame:
    """(name_key, birth_date) and (name_key, phone_tail) pairs that only a cluster has, no node alone.

    A stored person known by cédula with its name, and a row bringing the same cédula
    with a birth date, make a key neither has: a production person holding that key
    is someone resolution must see (the same cluster-level keys as _level_pairs).
    Columns: name_key, birth_date, phone_tail (one of the last two set).
    """
    live = ~in_review
    sizes = np.bincount(anchor[live], minlength=len(nodes))
    idx = np.flatnonzero(live & (sizes[anchor] > 1))
    own = pd.DataFrame(
        {
            "anchor": anchor[idx],
            "name_key": nodes["name_key"].astype("string").to_numpy()[idx],
            "birth_date": nodes["birth_date"].astype("string").to_numpy()[idx],
            "phone_tail": nodes["mobile"].astype("string").str.slice(-10).to_numpy()[idx],
        }
    )
    names = own[["anchor", "name_key"]].dropna().drop_duplicates()
    pairs = []
    for column in ("birth_date", "phone_tail"):
        combined = names.merge(own[["anchor", column]].dropna().drop_duplicates(), on="anchor")[
            ["name_key", column]
        ]
        single = own[["name_key", column]].dropna().drop_duplicates()
        combined = combined.drop_duplicates().merge(single, how="left", indicator=True)
        pairs.append(combined.loc[combined["_merge"] == "left_only", ["name_key", column]])
    return pd.concat(pairs, ignore_index=True).reindex(columns=["name_key", "birth_date", "phone_tail"])


class _SlowCluster:
    __slots__ = ("anchor", "owner", "sets")

    def __init__(self, anchor: int, owner: int, sets: dict[str, set]):
        self.anchor = anchor
        self.owner = owner  # node index of the production person it belongs to, -1 when none
        self.sets = sets

    @property
    def existing(self) -> bool:
        return self.owner >= 0


def _clusters_compatible(
    a: _SlowCluster, b: _SlowCluster, stronger: tuple[str, ...], *, existing_rule: bool = True
) -> bool:
    if existing_rule and a.existing and b.existing and a.owner != b.owner:
        return False
    for attr in stronger:
        sa, sb = a.sets[attr], b.sets[attr]
        if sa and sb and sa.isdisjoint(sb):
            return False
    return True


def resolve_persons(nodes: pd.DataFrame) -> Resolution:
    """Cluster the nodes into persons; see the module docstring for the rules.

    `nodes` columns: is_existing (bool), linked_person_id, source_row_person_id, cedula,
    student_number, email, name_key, birth_date, mobile (keys; NA when absent), and optionally
    `owner`: the node index of the production person a row is already linked to (-1 when none;
    an existing person owns itself), and optionally `veto_cedula`: the cédulas before shared ones were
    masked from `cedula` (they veto, they never join). Rows of two different persons are never joined -- the
    pipeline never merges production persons -- while rows of one person are joined only as
    the rules allow, so a person holding rows the rules tell apart shows as two clusters of one
    owner (`assign_persons`). Row order matters: existing persons first, then staging rows in
    arrival order.
    """
    n = len(nodes)
    res = Resolution.unresolved(n)
    anchor, matched_by, in_review = res.anchor, res.matched_by, res.in_review
    is_existing = nodes["is_existing"].to_numpy(dtype=bool)
    owner = nodes["owner"].to_numpy(dtype=np.int64) if "owner" in nodes else np.full(n, -1, dtype=np.int64)
    owner = np.where(is_existing, np.arange(n), owner)
    attrs = {
        c: nodes[c].astype("string").to_numpy(dtype=object, na_value=None)
        for c in ("cedula", "student_number", "email", "birth_date")
    }
    if "veto_cedula" in nodes:
        # A shared cédula joins nothing, but still tells two cédulas apart: no chain joins two cédulas.
        attrs["cedula"] = nodes["veto_cedula"].astype("string").to_numpy(dtype=object, na_value=None)
    if n == 0:
        return res

    for level, columns, stronger in LEVELS:
        pairs = _level_pairs(nodes, columns, anchor, ~in_review)
        if len(pairs) < 2:
            continue
        codes, _ = pd.factorize(pairs["key"].to_numpy())
        pair_anchor = pairs["anchor"].to_numpy()
        first_of_code = pd.Series(pair_anchor).groupby(codes).transform("min").to_numpy()
        joining = pair_anchor != first_of_code
        if not joining.any():
            continue
        u, v = pair_anchor[joining], first_of_code[joining]
        graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        touched = np.unique(comp[u])
        live = np.flatnonzero(~in_review)
        node_comp = comp[anchor[live]]
        in_touched = np.isin(node_comp, touched)
        members = live[in_touched]
        member_comp = node_comp[in_touched]
        member_owner = owner[members].astype("float64")
        member_owner[member_owner < 0] = np.nan
        frame = pd.DataFrame({"comp": member_comp, "owner": member_owner})
        for attr in stronger:
            frame[attr] = attrs[attr][members]
        grouped = frame.groupby("comp")
        bad = grouped["owner"].nunique() > 1
        for attr in stronger:
            bad |= grouped[attr].nunique() > 1
        bad_comps = set(bad.index[bad.to_numpy()])
        good = ~np.isin(member_comp, list(bad_comps)) if bad_comps else np.ones(len(members), dtype=bool)
        if good.any():
            good_nodes, good_comp = members[good], member_comp[good]
            new_anchor = pd.Series(anchor[good_nodes]).groupby(good_comp).transform("min").to_numpy()
            changed = new_anchor != anchor[good_nodes]
            matched_by[good_nodes[changed]] = level
            anchor[good_nodes] = new_anchor
        if bad_comps:
            pair_comp = comp[pair_anchor]
            for comp_id in sorted(bad_comps):
                res.stats["slow_components"] += 1
                in_comp = pairs[pair_comp == comp_id]
                groups = sorted(
                    (sorted(set(g)) for g in in_comp.groupby("key", sort=False)["anchor"].agg(list)),
                    key=lambda g: g[0],
                )
                vetoed = _resolve_conflicted(
                    res, level, stronger, groups, members[member_comp == comp_id], owner, attrs
                )
                res.stats["vetoed_joins"] += vetoed
                if vetoed:
                    res.stats[f"vetoed_at_{level}"] = res.stats.get(f"vetoed_at_{level}", 0) + vetoed

    staging_first = (matched_by == None) & (owner < 0) & ~in_review  # noqa: E711
    matched_by[staging_first] = "new"
    return res


class _ConflictedGroup:
    """The clusters of one conflicting group (the exact slow path), with a union-find over their anchors."""

    def __init__(
        self,
        comp_nodes: np.ndarray,
        anchor: np.ndarray,
        owner: np.ndarray,
        attrs: dict[str, np.ndarray],
        stronger: tuple[str, ...],
    ):
        self.stronger = stronger
        self.clusters: dict[int, _SlowCluster] = {}
        for node in comp_nodes:
            a = int(anchor[node])
            c = self.clusters.get(a)
            if c is None:
                c = self.clusters[a] = _SlowCluster(a, -1, {attr: set() for attr in stronger})
            if owner[node] >= 0:
                c.owner = int(owner[node])
            for attr in stronger:
                value = attrs[attr][node]
                if value is not None:
                    c.sets[attr].add(value)
        self.parent = {a: a for a in self.clusters}

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def merge(self, into: int, other: int) -> None:
        self.parent[other] = into
        target, source = self.clusters[into], self.clusters[other]
        if target.owner < 0:
            target.owner = source.owner
        for attr in self.stronger:
            target.sets[attr] |= source.sets[attr]

    def compatible(self, a: int, b: int, *, existing_rule: bool = True) -> bool:
        return _clusters_compatible(
            self.clusters[a], self.clusters[b], self.stronger, existing_rule=existing_rule
        )

    def existing(self, a: int) -> bool:
        return self.clusters[a].existing

    def partners_of(self, r: int, pool: list[int]) -> list[int]:
        return [o for o in pool if o != r and self.compatible(r, o)]


def _resolve_conflicted(
    res: Resolution,
    level: str,
    stronger: tuple[str, ...],
    groups: list[list[int]],
    comp_nodes: np.ndarray,
    owner: np.ndarray,
    attrs: dict[str, np.ndarray],
) -> int:
    """Exact, order-deterministic resolution of one conflicting group of nodes. Returns vetoed joins.

    `groups`: the anchors sharing one key of `level`, ordered by their first anchor. Compatible
    clusters join; a vetoed join is counted, two production persons a row ties are recorded as a
    possible duplicate, and what cannot be decided goes to review (`reviewed`: root -> reason, candidate).
    """
    group = _ConflictedGroup(comp_nodes, res.anchor, owner, attrs, stronger)
    reviewed: dict[int, tuple[str, int]] = {}
    vetoed = 0
    for members in groups:
        roots = sorted({group.find(a) for a in members if group.find(a) not in reviewed})
        if len(roots) < 2:
            continue
        if all(
            group.compatible(roots[i], roots[j]) for i in range(len(roots)) for j in range(i + 1, len(roots))
        ):
            for r in roots[1:]:
                group.merge(roots[0], r)
            continue
        vetoed += 1
        res.possible_duplicates += _persons_tied(group, roots, comp_nodes, res.anchor, owner, level)
        if level == "email":
            _give_email_to_its_owner(group, roots, reviewed)
        else:
            _join_unless_ambiguous(group, roots, reviewed, AMBIGUOUS.format(level=level.replace("_", " + ")))
    _settle_nodes(res, group, reviewed, comp_nodes, level)
    return vetoed


def _persons_tied(
    group: _ConflictedGroup,
    roots: list[int],
    comp_nodes: np.ndarray,
    anchor: np.ndarray,
    owner: np.ndarray,
    level: str,
) -> list[tuple[int, int, int, str]]:
    """Two production persons a staging row of the group ties, that nothing tells apart: one person
    recorded twice? Never merged here (the pipeline never merges production persons): a person decides."""
    tied = []
    existing_roots = [r for r in roots if group.existing(r)]
    for i, a in enumerate(existing_roots):
        for b in existing_roots[i + 1 :]:
            if group.clusters[a].owner != group.clusters[b].owner and group.compatible(
                a, b, existing_rule=False
            ):
                witness = next(
                    (
                        int(x)
                        for x in sorted(comp_nodes)
                        if owner[x] < 0 and group.find(int(anchor[x])) in roots
                    ),
                    None,
                )
                if witness is not None:
                    tied.append((group.clusters[a].owner, group.clusters[b].owner, witness, level))
    return tied


def _give_email_to_its_owner(
    group: _ConflictedGroup, roots: list[int], reviewed: dict[int, tuple[str, int]]
) -> None:
    """The e-mail has one owner: the existing person, else the first to arrive. A row that cannot be
    that owner's waits in review (EMAIL_TAKEN)."""
    email_owner = roots[0]
    for r in roots[1:]:
        if group.compatible(email_owner, r):
            group.merge(email_owner, r)
        elif not group.existing(r):
            reviewed[r] = (EMAIL_TAKEN, email_owner)


def _join_unless_ambiguous(
    group: _ConflictedGroup, roots: list[int], reviewed: dict[int, tuple[str, int]], reason: str
) -> None:
    """First decide who is ambiguous, then join the rest: joining first would let the order of the
    group decide an ambiguous row's person."""
    for r in roots:
        partners = group.partners_of(r, roots)
        clashing = [p for p in partners if any(not group.compatible(p, q) for q in partners if q != p)]
        if not clashing:
            continue
        if group.existing(r):
            # An existing person two incompatible rows could both be: neither joins it
            # (which one would depend on arrival order); both wait for a person.
            for p in clashing:
                if not group.existing(p):
                    reviewed.setdefault(p, (reason, r))
        else:
            reviewed.setdefault(r, (reason, partners[0]))
    remaining = [r for r in roots if r not in reviewed]
    for r in remaining:
        for p in group.partners_of(r, remaining):
            a, b = sorted((group.find(r), group.find(p)))
            if a != b and group.compatible(a, b):
                group.merge(a, b)


def _settle_nodes(
    res: Resolution,
    group: _ConflictedGroup,
    reviewed: dict[int, tuple[str, int]],
    comp_nodes: np.ndarray,
    level: str,
) -> None:
    """Write the group's outcome back per node: its new anchor and how it matched, or its review."""
    for node in comp_nodes:
        old = int(res.anchor[node])
        new = group.find(old)
        if new in reviewed:
            reason, candidate = reviewed[new]
            res.in_review[node] = True
            res.review_reason[node] = reason
            res.review_candidate[node] = group.find(candidate)
            res.review_level[node] = level
            continue
        if new != old:
            res.matched_by[node] = level
            res.anchor[node] = new


# --- clusters onto production persons -------------------------------------------------------

FLAGGED_PERSON = "matches a person flagged as a possible false merge: waits for that decision"


@dataclass
class Assignment:
    """Per node, the person it ends with (for survivorship), and what goes to review.

    `person_anchor`: for staging nodes linked to an existing person, that person's node; for a
    new person's rows, the cluster's anchor; for existing nodes, themselves. `in_review`:
    staging nodes that wait for a person (ambiguous, or matching a flagged person).
    """

    person_anchor: np.ndarray
    in_review: np.ndarray
    review_reason: np.ndarray
    review_candidate: np.ndarray  # node index of the closest person's node, -1 when none
    matched_by: np.ndarray
    # (person node, other person node, witness staging node, level): one person recorded twice?
    possible_duplicates: list[tuple[int, int, int, str]] = field(default_factory=list)
    # (person node, [its nodes that stay], [[its nodes to move], ...]): rows the rules tell apart
    false_merges: list[tuple[int, list[int], list[list[int]]]] = field(default_factory=list)


def assign_persons(
    nodes: pd.DataFrame,
    resolution: Resolution,
    flagged: set[int] | None = None,
    accepted: set[int] | None = None,
) -> Assignment:
    """Map the clusters of `resolve_persons` onto production persons.

    `nodes` columns: `is_existing` (a production person), `is_history` (a row linked before, kept
    as evidence), `owner` (node index of the person a row is linked to, -1 otherwise). `flagged`:
    person nodes already waiting for a false-merge decision; `accepted`: person nodes a person
    decided to be one (kept together, or merged): their rows falling apart is not asked again.

    - A cluster without an owner is a new person; a cluster with one is that person (resolution
      never gives a cluster two owners: rows two persons share are possible duplicates).
    - A person whose own rows fall into several clusters holds rows the rules tell apart: it is a
      possible false merge, and nothing more joins it until a person decides (new rows that would
      wait in review). Rows already linked to a person stay with it.
    """
    n = len(nodes)
    flagged = set(flagged or ())
    accepted = set(accepted or ())
    is_existing = nodes["is_existing"].to_numpy(dtype=bool)
    is_history = nodes["is_history"].to_numpy(dtype=bool)
    owner = np.where(is_existing, np.arange(n), nodes["owner"].to_numpy(dtype=np.int64))
    staged = ~is_existing & ~is_history
    in_review = resolution.in_review & staged
    review_reason = resolution.review_reason.copy()
    review_candidate = resolution.review_candidate.copy()
    matched_by = resolution.matched_by.copy()
    cluster = resolution.anchor
    live = ~in_review

    owned = pd.DataFrame({"cluster": cluster[live], "person": owner[live], "node": np.flatnonzero(live)})
    owned = owned[owned["person"] >= 0]
    cluster_owner = owned.drop_duplicates("cluster").set_index("cluster")["person"]
    # Split: the person's *rows* fall apart (its own stored keys may share nothing with a row whose
    # only key is its name: that is no evidence of two people).
    rows_owned = owned[~is_existing[owned["node"].to_numpy()]]
    clusters_of_person = rows_owned.groupby("person")["cluster"].nunique()
    split = set(clusters_of_person.index[clusters_of_person.to_numpy() > 1].tolist()) - accepted
    blocked = flagged | split

    person_anchor = np.where(is_existing, np.arange(n), cluster)
    target = cluster_owner.reindex(cluster).to_numpy(dtype="float64", na_value=np.nan)
    linked_before = staged & live & (owner >= 0)
    person_anchor[linked_before] = owner[linked_before]
    matched_by[linked_before] = "linked"
    joining = np.flatnonzero(staged & live & (owner < 0) & ~np.isnan(target))
    join_target = target[joining].astype(np.int64)
    waits = np.isin(join_target, list(blocked)) if blocked else np.zeros(len(joining), dtype=bool)
    person_anchor[joining[~waits]] = join_target[~waits]
    held = joining[waits]
    in_review[held] = True
    review_reason[held] = FLAGGED_PERSON
    review_candidate[held] = join_target[waits]

    false_merges: list[tuple[int, list[int], list[list[int]]]] = []
    for person in sorted(split - flagged):
        mine = rows_owned[rows_owned["person"] == person]
        groups = {int(c): sorted(int(x) for x in g) for c, g in mine.groupby("cluster", sort=True)["node"]}
        home = int(cluster[person])
        stay_cluster = home if home in groups else min(groups, key=lambda c: groups[c][0])
        moves = [g for c, g in groups.items() if c != stay_cluster]
        false_merges.append((int(person), groups[stay_cluster], moves))
    return Assignment(
        person_anchor,
        in_review,
        review_reason,
        review_candidate,
        matched_by,
        list(resolution.possible_duplicates),
        false_merges,
    )
