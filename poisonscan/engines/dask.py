"""The Dask engine: the same passes, run over partitions on a Dask cluster.

``poisonscan scan ... --engine dask [--scheduler ADDRESS]`` (or ``scan(...,
engine="dask", scheduler=...)``). Without an address a :class:`distributed.LocalCluster`
sized to this machine is started for the scan and closed after it (its workers threads
of this process when an input or the output is a ``memory://`` URL, which only this
process can reach; a cluster given by address whose workers are other processes is
refused for such a URL).

* **Partitions.** :meth:`~poisonscan.io.sources.Source.partitions` cuts the input into
  pieces that know their first global row: Parquet by whole row groups (the offsets come
  from the file metadata), CSV one piece per file (its rows are counted on the workers
  first), in-memory tables by slices. A worker streams its piece in ``chunk_rows`` chunks,
  so its memory is bounded as in the local engine.
* **Pass 1** maps :func:`~.pieces.profile_piece` over the pieces and merges the states
  pairwise, neighbours with neighbours, up a tree. ``merge`` is associative and the tree
  keeps row order, so the state equals the local engine's (floating-point moments up to
  rounding; nothing a check fits on depends on them).
* **Fit** runs on one worker (where the merged state is); the plan comes back to the
  client once (for the summary) and is broadcast once to every worker (``scatter``).
* **Pass 2** scores the pieces on the workers, each writing its pass-2 rows to a part of
  ``.pass2.parquet/``; the client receives only the fused score and the violation flag
  of each row (9 bytes a row, as the local engine holds them) and decides.
* **Pass 3** routes the pieces on the workers. Parquet outputs are directories of parts
  under the contract's names (``scores.parquet/part-00000.parquet``, ...), read by pandas
  and pyarrow as one table; CSV outputs are one file, concatenated from headerless parts
  by a worker. Only the suspect rows come back, for ``suspects.csv``.

The workers read the inputs and write the outputs themselves: on a cluster of several
machines both must be URLs (``s3://...``) or paths on a shared file system, and the
workers need poisonscan installed. Only this module imports Dask.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
import warnings

import numpy as np

from .. import pipeline
from ..errors import InputError, UsageError
from ..io import storage
from ..io.sinks import concat_parts
from ..io.sources import place
from .local import ScanRun
from .pieces import PASS2_FILE, Layout, add_tally, profile_piece, require_rows, \
    route_piece, score_piece, sorted_tally


#: How long to try reaching a scheduler given by address, and to wait for its first worker.
CONNECT_TIMEOUT = "30s"
#: This process's token: a Dask worker in another process has its own (a process id can
#: repeat across machines and containers).
_PROCESS = uuid.uuid4().hex


@contextlib.contextmanager
def connect(scheduler: str | None, *, in_process: bool = False):
    """A :class:`distributed.Client` of the cluster at ``scheduler`` (or of a new local
    cluster, its workers threads of this process with ``in_process``), closed on exit (a
    cluster started here is closed too).

    Raises
    ------
    UsageError
        Dask is not installed, the scheduler cannot be reached, or no worker joined it.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("the Dask engine needs dask.distributed: "
                         "pip install 'poisonscan[dask]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                             ) from None
        with client:
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            except TimeoutError:
                raise UsageError(f"the Dask cluster at {scheduler} has no worker (none "
                                 f"joined within {CONNECT_TIMEOUT})") from None
            yield client
        return
    # the workers' own logs stay quiet: a task's error reaches the client, which reports it
    # as one line (a bad partition is an input error, exit 2); so does the scheduler's
    # warning that another cluster holds its usual HTTP port (it takes another)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(dashboard_address=None, silence_logs=logging.CRITICAL,
                               processes=not in_process)
    with cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def replicas_kept(client):
    """Pause the scheduler's active memory manager while the scan runs (restarted after,
    if it was running).

    Its default policy drops surplus copies of a result, any of them: it could drop the
    copy in the worker process that made a pass-1 state, and with it files the state
    refers to (the duplicate check's spilled fingerprint runs are owned, and removed
    on release, by the process that wrote them).
    """
    amm = getattr(client, "amm", None)
    running = False
    try:
        running = bool(amm is not None and amm.running())
        if running:
            amm.stop()
    except (AttributeError, KeyError, OSError, ValueError):  # a scheduler without the AMM
        running = False
    try:
        yield
    finally:
        if running:
            amm.start()


def part_name(index: int, count: int) -> str:
    """``part-00042.parquet``: zero-padded so that names sort in row order."""
    return f"part-{index:0{max(5, len(str(count - 1)))}d}.parquet"


def _process_token() -> str:
    """The token of the process this runs in (:data:`_PROCESS`)."""
    return _PROCESS


def require_workers_here(client, scheduler: str) -> None:
    """Refuse a cluster whose workers run in other processes: they cannot see a
    ``memory://`` store, which lives in this process (they failed on their first read).

    Raises
    ------
    UsageError
        A worker of the cluster at ``scheduler`` is another process.
    """
    try:
        tokens = client.run(_process_token)
    except ImportError:  # a worker without poisonscan is not this process
        tokens = {None: None}
    elsewhere = [w for w, token in tokens.items() if token != _PROCESS]
    if elsewhere:
        raise UsageError(
            f"a memory:// URL lives in this process, and the Dask workers at {scheduler} "
            f"run in other processes ({len(elsewhere)} of them): give a path or an object "
            "store URL they can reach, or leave out --scheduler")


class DaskRun(ScanRun):
    """One scan on a Dask cluster; the parameters are those of :class:`ScanRun`.

    The cluster is ``config.scheduler`` (an address), or a local cluster started for
    the scan. ``config.partition_rows`` sizes the partitions.
    """

    def run(self) -> dict:
        t = time.perf_counter()
        # a memory:// store lives in this process: a cluster started here reaches it only
        # with its workers in this process too
        in_process = any(str(name).lower().startswith("memory://")
                         for name in [*self.source.names, self.out.url or ""])
        with connect(self.config.scheduler, in_process=in_process) as client, \
                replicas_kept(client):
            if in_process and self.config.scheduler:
                require_workers_here(client, self.config.scheduler)
            self.client = client
            self._timed("cluster", t)
            try:
                return super().run()
            finally:
                self.client = None

    # ---------------------------------------------------------------------------- passes
    def _track(self, futures, stage: str, total: int | None, *, fetch: bool = True):
        """Yield ``(index, result)`` of ``futures`` as they finish, reporting progress.

        With ``fetch=False`` results stay on the workers (``None`` is yielded); a failed
        task still raises its error (e.g. an :class:`InputError`) here.
        """
        from distributed import as_completed

        index = {f.key: i for i, f in enumerate(futures)}
        advance = self._advance(stage, total)
        for future in as_completed(futures):
            i = index[future.key]
            if fetch or future.status == "error":
                result = future.result()
            else:
                result = None
            if self.parts[i].num_rows is not None:
                advance(self.parts[i].num_rows)
            yield i, result

    def pass_one(self):
        cfg, client = self.config, self.client
        parts = self.source.partitions(cfg.partition_rows)
        if not parts:  # Parquet files without row groups
            require_rows(None, self.source.names)
        if any(p.start is None for p in parts):  # CSV: count every file's rows first
            counts = client.gather(client.map(_count, parts, pure=False))
            parts = place(parts, counts)
        self.parts = parts
        [checks] = client.scatter([self.checks], broadcast=True, hash=False)
        self._checks_ref = checks
        leaves = client.map(_profile, parts, checks=checks, chunk_rows=cfg.chunk_rows,
                            sample_rows=cfg.sample_rows, seed=cfg.seed, schema=self.schema,
                            pure=False)
        root, self._pass1 = _tree_merge(client, leaves, checks)
        for _ in self._track(leaves, "pass 1/3: profile", None, fetch=False):
            pass
        return root  # a future of the merged state, fitted where it is

    def fit(self, state) -> pipeline.Plan:
        client = self.client
        plan = client.submit(_fit, state, self._checks_ref, self.source.names,
                             self.config.fusion, self.config.family_weights,
                             pure=False).result()
        for future in (state, self._checks_ref, *self._pass1):
            future.release()  # pass-1 states (samples, fingerprints) are not needed any more
        self._pass1 = []
        [self._plan_ref] = client.scatter([plan], broadcast=True, hash=False)
        return plan

    def pass_two(self, plan: pipeline.Plan):
        cfg, client, n = self.config, self.client, plan.profile.n_rows
        folder = self.out.shared(PASS2_FILE)
        storage.make_dirs(folder)
        self.pass2 = [storage.join(folder, part_name(i, len(self.parts)))
                      for i in range(len(self.parts))]
        futures = client.map(_score, self.parts, self.pass2, plan=self._plan_ref,
                             chunk_rows=cfg.chunk_rows, pure=False)
        score = np.zeros(n)
        violation = np.zeros(n, dtype=bool)
        fired: dict[str, int] = {f: 0 for f in plan.families}
        tally: dict | None = None
        rows = 0
        for i, (part_score, part_violation, scored) in self._track(futures, "pass 2/3: score", n):
            start = self.parts[i].start
            if start + len(part_score) > n:
                raise InputError("the input changed during the scan (more rows than in pass 1)")
            score[start:start + len(part_score)] = part_score
            violation[start:start + len(part_score)] = part_violation
            for family, count in scored.fired.items():
                fired[family] = fired.get(family, 0) + count
            if scored.tally is not None:
                tally = add_tally(tally if tally is not None else {}, scored.tally)
            rows += scored.rows
        if rows != n:
            raise InputError("the input changed during the scan (fewer rows than in pass 1)")
        self.bounds_tally = sorted_tally(tally)
        return score, violation, fired

    def pass_three(self, plan: pipeline.Plan, suspect: np.ndarray) -> dict:
        cfg, client, out, fmt = self.config, self.client, self.out, self.fmt
        layout = Layout.of(plan, self.source, fmt)
        count = len(self.parts)
        clean, quarantine = f"clean.{fmt}", f"quarantine.{fmt}"
        parts = {}
        for name in ("scores.parquet", clean, quarantine):
            # a Parquet clean file stays a directory of parts under its own name; the other
            # outputs are parts in hidden folders, joined into one file below
            folder = out.shared(name if name == "clean.parquet" else f".{name}.parts")
            storage.make_dirs(folder)
            parts[name] = [storage.join(folder, part_name(i, count)) for i in range(count)]
        slices = [suspect[p.start:p.start + p.num_rows] for p in self.parts]
        # sent once to every worker: it holds the fusion's sample scores (explanations)
        [shared] = client.scatter([layout], broadcast=True, hash=False)
        futures = client.map(_route, self.parts, slices, self.pass2, parts["scores.parquet"],
                             parts[clean], parts[quarantine], layout=shared,
                             chunk_rows=cfg.chunk_rows, pure=False)
        routed = [None] * count
        for i, result in self._track(futures, "pass 3/3: write", len(suspect)):
            routed[i] = result
        # scores and quarantine become single local files (the report reads them; they
        # hold a few columns, or only the suspects): joined on a worker when the output
        # directory is local, else by this process; a CSV clean file is joined on a worker
        joins = [("scores.parquet", layout.scores, "parquet", False, out.file("scores.parquet")),
                 (quarantine, layout.quarantine, fmt, True, out.file(quarantine))]
        if fmt == "csv":
            joins.append((clean, layout.data, fmt, False, out.shared(clean)))
        pending = []
        for name, schema, kind, guard, target in joins:
            if out.url is None or storage.is_url(str(target)):
                pending.append(client.submit(concat_parts, parts[name], str(target), schema,
                                             kind, guard_formulas=guard, pure=False))
            else:
                concat_parts(parts[name], target, schema, kind, guard_formulas=guard)
        client.gather(pending)
        result = self._routed(layout, len(suspect), [r.suspects for r in routed],
                              sum(r.clean for r in routed), sum(r.quarantined for r in routed))
        result["bounds_tally"] = self.bounds_tally
        return result


# ------------------------------------------------------------------- tasks (on workers)

def _count(part) -> int:
    return part.count()


def _profile(part, checks, *, chunk_rows, sample_rows, seed, schema):
    return profile_piece(part, checks, chunk_rows=chunk_rows, sample_rows=sample_rows,
                         seed=seed, schema=schema)


def _merge(a, b, checks):
    """Merge two neighbouring states (``a`` holds the earlier rows); ``None`` is empty."""
    if b is None:
        return a
    return pipeline.merge(a, b, checks)


def _tree_merge(client, states: list, checks):
    """Merge futures of states pairwise, neighbours with neighbours, up to one future.

    Returns the root and every future of the tree. Hold them until the fit: a state may
    refer to files owned by the worker process that made it (the duplicate check's
    spilled fingerprint runs are removed when their owner object is freed there), so
    the intermediate states must stay alive until the merged one has been used.
    """
    tree = list(states)
    while len(states) > 1:
        merged = [client.submit(_merge, states[i], states[i + 1], checks, pure=False)
                  for i in range(0, len(states) - 1, 2)]
        if len(states) % 2:
            merged.append(states[-1])
        tree += merged
        states = merged
    return states[0], tree


def _fit(state, checks, names, fusion_rule, family_weights) -> pipeline.Plan:
    """Fit on the worker holding the merged state (:func:`pipeline.fit` spreads the checks
    over the cores of its machine in threads, each with one BLAS/OpenMP thread, as Dask
    starts its workers)."""
    return pipeline.fit(require_rows(state, names), checks, fusion_rule=fusion_rule,
                        family_weights=family_weights)


def _score(part, path, *, plan, chunk_rows):
    n = part.num_rows
    score = np.zeros(n)
    violation = np.zeros(n, dtype=bool)
    scored = score_piece(part, plan, chunk_rows=chunk_rows, path=path, score=score,
                         violation=violation, offset=part.start, tally=True)
    if scored.rows != n:
        raise InputError("the input changed during the scan (fewer rows than in pass 1)",
                         path=part.names[0])
    return score, violation, scored


def _route(part, suspect, pass2, scores, clean, quarantine, *, layout, chunk_rows):
    writers = layout.writers(scores, clean, quarantine, header=False)
    try:
        return route_piece(part, layout, suspect, pass2, writers, chunk_rows=chunk_rows,
                           offset=part.start)
    finally:
        for writer in writers:
            writer.close()
