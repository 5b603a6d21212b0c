"""Transfer benchmark: does reading the user's other studies help, against Vizier's
transfer-learning GP? Leave one study out of a family.

    python -m benchmarks.transfer                           # every designer, study and seed
    python -m benchmarks.transfer --aggregate               # tables + plot from what has run
    python -m benchmarks.transfer --candidate new=PATH.pt --designers omnipred_priors@new
                                                            # other weights, runs kept apart

Families (each a set of related studies): the same scikit-learn model tuned on four datasets
that ship with scikit-learn (SVM, k-NN and gradient boosting on breast_cancer, wine, digits and
iris; 3-fold accuracy), and one BBOB function (Ellipsoidal, 4-D) in four instances (the
optimum moved a little, the output scaled and offset). A left-out study's prior studies are
its family's other three, each 30 random trials (seed 777), as a user's earlier sweeps.
The unrelated control gives every left-out scikit-learn study the prior studies of another
family (SVM <- k-NN <- boosting <- SVM): they share no parameter; and every Ellipsoidal study
three instances of Rastrigin on its four parameters, the optimum elsewhere: misleading priors
that share every parameter.

Designers: OmniPred without and with prior studies (`set_priors`; weights trained with them:
the shipped transfer checkpoint, or `--checkpoint`; `omnipred_priors_all`,
`omnipred_priors_late`, `omnipred_priors_centre`, `omnipred_priors_early`,
`omnipred_priors_quick`, `omnipred_priors_top2`, `omnipred_priors_chosen`,
`omnipred_priors_pooled`, `omnipred_priors_mix_quick`, `omnipred_priors_mix_top2`,
`omnipred_priors_ucb90`, `omnipred_priors_ucb75`, `omnipred_priors_until10`,
`omnipred_priors_until15`, `omnipred_priors_pooled10`, `omnipred_priors_averaged`,
`omnipred_priors_search`, `omnipred_priors_search_continuous`,
`omnipred_priors_quick_pooled5`, `omnipred_priors_ucb50`, `omnipred_priors_region10`,
`omnipred_priors_region25` and `omnipred_priors_relevance` are the designer's
prior-study settings measured against its defaults), Vizier's GP bandit without and with its
`set_priors` (stacked residual GPs; related families only: it needs one search space), and
random search. 30 trials, seeds 0-2 (`--seeds` for others; `--cases related` leaves out the
unrelated control, in runs and tables).
Normalised regret as in `tuning.py` (0 = the best value known on the study, 1 = the median of
64 random configurations), at 10 and 20 trials.
Raw runs under benchmarks/results/raw/transfer/ (ignored by git), each with the hash of the
weights and configs that made it: one made otherwise runs again (the old run kept beside it,
`NAME@SIGNATURE.json`, for tables of those weights: `--checkpoint`), and tables read only runs
made as each designer is now. The whole benchmark (no --designers, --seeds, --cases,
--families nor --checkpoint) ends with its table, benchmarks/results/transfer.md; a part of
it only stores its runs, for `--aggregate` with the same flags and a `--table` of its own.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from benchmarks import process_setup

process_setup.prepare()  # before torch and JAX load

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from vizier import algorithms as vza  # noqa: E402

from benchmarks import designer_zoo, run_store, transfer_families, tuning_tasks  # noqa: E402
from benchmarks.transfer_families import CASES, FAMILIES, cases, family  # noqa: E402
from benchmarks.comparisons import regret_panel, save_grid  # noqa: E402
from designers.acquisition import UCB  # noqa: E402
from designers.acquisition_search import (AcquisitionSearchConfig,  # noqa: E402
                                          EvolutionarySearch)
from designers.designer_config import OmniPredDesignerConfig  # noqa: E402
from designers.study_runner import run_study  # noqa: E402
from vizier_omnipred.checkpoints import SHIPPED_TRANSFER  # noqa: E402
from vizier_omnipred.relevance import RelevanceConfig  # noqa: E402

RESULTS = run_store.RESULTS
RAW = run_store.RAW / 'transfer'
TRIALS = 30
SEEDS = (0, 1, 2)
MARKS = (10, 20)
# The share-below's interval: resamples of the seeds, and their generator's seed.
_RESAMPLES = 1000
_RESAMPLE_SEED = 0
DESIGNERS = ('omnipred', 'omnipred_priors', 'omnipred_priors_all', 'omnipred_priors_late',
             'omnipred_priors_early', 'omnipred_priors_centre', 'omnipred_priors_quick',
             'omnipred_priors_top2', 'omnipred_priors_chosen', 'omnipred_priors_pooled',
             'omnipred_priors_mix_quick', 'omnipred_priors_mix_top2', 'omnipred_priors_ucb90',
             'omnipred_priors_ucb75', 'omnipred_priors_until10', 'omnipred_priors_until15',
             'omnipred_priors_pooled10', 'omnipred_priors_averaged', 'omnipred_priors_search',
             'omnipred_priors_search_continuous', 'omnipred_priors_quick_pooled5',
             'omnipred_priors_ucb50', 'omnipred_priors_region10', 'omnipred_priors_region25',
             'omnipred_priors_relevance', 'gp_bandit', 'gp_bandit_priors', 'random')
# Vizier's GP bandits run one process per study: JAX's compile caches grow study by study
# until a long run is out of memory (the 2-core machine's 24 GB, within 5 studies).
ISOLATED = ('gp_bandit', 'gp_bandit_priors')
# What the designer's defaults for prior studies are chosen on. The model's reading of them
# (`RelevanceConfig.prior_studies`): omnipred_priors_all reads every prior study as a prior
# study only, where the default mixes that reading with those holding all the study's
# parameters pooled into its trials ('mixture'); omnipred_priors_chosen's model reads only the
# prior studies that raise its held-out likelihood of the study's trials,
# omnipred_priors_pooled's may also read one as the study's own trials, from the first
# model-based suggestion (5 trials) on. The designer's use of them, each with the 'all'
# reading (what they were chosen with): omnipred_priors_late reads the priors in context only
# (no prior-best points, neither in the pool nor as seeds); omnipred_priors_centre seeds from
# the space's centre, not the prior studies' best; omnipred_priors_early does that too and
# suggests by the model from the 3rd trial; omnipred_priors_quick seeds with the prior
# studies' best (3 here) and then the model; omnipred_priors_top2 takes each prior study's two
# best (5 seeds all from them here; 6 in the pool). omnipred_priors_mix_quick and
# omnipred_priors_mix_top2 are _quick and _top2 with the default (mixture) reading;
# omnipred_priors_ucb90 is the default with the study's own optimism (UCB at the 0.9
# quantile, as without priors), omnipred_priors_ucb75 with the 0.75 quantile. The other
# settings keep the quantile they were measured with: the 0.9, and the 0.75 for the _until ones
# and _pooled10. omnipred_priors_until10 and _until15 read the prior studies for the
# first 10 / 15 trials only, then suggest as without them; omnipred_priors_pooled10 reads the
# mixture for the first 10 trials, then the prior studies as prior studies only
# (`RelevanceConfig.pooled_until`): its first 10 trials are _ucb75's.
# omnipred_priors_averaged reads the prior studies as prior studies averaged with the study
# alone by their held-out likelihoods (`prior_studies='averaged'`), the default's acquisition.
# omnipred_priors_search is the default with the acquisition searched rather than ranked in
# a fixed pool (`optimizer_with_priors`: an evolutionary search under the exact quantile of
# the default's acquisition); omnipred_priors_search_continuous moves only the DOUBLE
# parameters there and keeps the pool's integer and categorical choices (a space without a
# DOUBLE parameter has its pool ranked, as the default's). omnipred_priors_quick_pooled5 is
# the default with the model from the 4th trial (after the three prior bests) and the
# mixture's pooled reading only from 5 study trials on (`RelevanceConfig.pooled_from`): the
# suggestions in between read the prior studies as prior studies, so that the pooled y are
# not mapped onto the range of three seeds from the prior studies' best points.
# omnipred_priors_ucb50 takes the median with priors (below the default's 0.6 quantile, the
# lowest of the three measured).
# omnipred_priors_region10 and _region25 draw the quasi-random seeds inside the box the prior
# studies' best 10% / 25% of trials span (`seed_region_share`).
# omnipred_priors_relevance chooses the parameters the model reads by the held-out likelihood
# of the study's and the prior studies' own trials together (`parameters_with_priors`).
_UCB90 = dict(acquisition_with_priors=UCB(quantile=0.9))
_DEFAULT_QUANTILE = OmniPredDesignerConfig().acquisition_with_priors.quantile
_UCB75 = dict(acquisition_with_priors=UCB(quantile=0.75))
_PRIOR_VARIANTS = {
    'omnipred_priors_all': _UCB90,
    'omnipred_priors_late': dict(num_prior_centres=0, **_UCB90),
    'omnipred_priors_centre': dict(seed_with_prior_best=False, **_UCB90),
    'omnipred_priors_early': dict(num_seed_trials_with_priors=2, seed_with_prior_best=False,
                                  **_UCB90),
    'omnipred_priors_quick': dict(num_seed_trials_with_priors=3, **_UCB90),
    'omnipred_priors_top2': dict(num_prior_centres=2, **_UCB90),
    'omnipred_priors_chosen': _UCB90,
    'omnipred_priors_pooled': _UCB90,
    'omnipred_priors_mix_quick': dict(num_seed_trials_with_priors=3, **_UCB90),
    'omnipred_priors_mix_top2': dict(num_prior_centres=2, **_UCB90),
    'omnipred_priors_ucb90': _UCB90,
    'omnipred_priors_ucb75': _UCB75,
    'omnipred_priors_until10': dict(prior_studies_until=10, **_UCB75),
    'omnipred_priors_until15': dict(prior_studies_until=15, **_UCB75),
    'omnipred_priors_pooled10': _UCB75,
    'omnipred_priors_search': dict(optimizer_with_priors=EvolutionarySearch(
        AcquisitionSearchConfig(inner_level=_DEFAULT_QUANTILE))),
    'omnipred_priors_search_continuous': dict(optimizer_with_priors=EvolutionarySearch(
        AcquisitionSearchConfig(inner_level=_DEFAULT_QUANTILE, moves='continuous'))),
    'omnipred_priors_quick_pooled5': dict(num_seed_trials_with_priors=3),
    'omnipred_priors_ucb50': dict(acquisition_with_priors=UCB(quantile=0.5)),
    'omnipred_priors_region10': dict(seed_region_share=0.1),
    'omnipred_priors_region25': dict(seed_region_share=0.25),
}
# The settings chosen with the 'all' reading keep it; the others read the default mixture.
_CHOSEN_WITH_ALL = ('omnipred_priors_late', 'omnipred_priors_centre', 'omnipred_priors_early',
                    'omnipred_priors_quick', 'omnipred_priors_top2')


def _reading(**changes) -> dict:
  """A variant's prior-study reading, otherwise the designer surrogate's default relevance
  (`LMSurrogateConfig.relevance`: the parameters chosen again when the study grows 20%)."""
  return dict(relevance=RelevanceConfig(refresh_growth=0.2, **changes))


_READ_ALL = _reading(prior_studies='all')
_SURROGATE_VARIANTS = {
    'omnipred_priors_all': _READ_ALL,
    **{name: _READ_ALL for name in _CHOSEN_WITH_ALL},
    'omnipred_priors_chosen': _reading(prior_studies='chosen'),
    'omnipred_priors_pooled': _reading(prior_studies='pooled', prior_min_trials=5),
    'omnipred_priors_pooled10': _reading(prior_studies='mixture', pooled_until=10),
    'omnipred_priors_averaged': _reading(prior_studies='averaged'),
    'omnipred_priors_quick_pooled5': _reading(prior_studies='mixture', pooled_from=5),
    'omnipred_priors_relevance': _reading(prior_studies='mixture', parameters_with_priors=True),
}


def omnipred_configs(name: str, checkpoint: str | None):
  """-> (OmniPredDesignerConfig, LMSurrogateConfig) of an OmniPred designer here."""
  from designers.lm_surrogate import LMSurrogateConfig  # pylint: disable=g-import-not-at-top
  base = _base(name)
  return (OmniPredDesignerConfig(**_PRIOR_VARIANTS.get(base, {})),
          LMSurrogateConfig(checkpoint=checkpoint, **_SURROGATE_VARIANTS.get(base, {})))


def _base(name: str) -> str:
  """A designer's name without its candidate checkpoint's tag (`omnipred_priors@new`)."""
  return name.partition('@')[0]


def checkpoint_for(name: str, checkpoint: str, candidates: dict[str, str] | None) -> str:
  """The weights a designer reads: its candidate's (`variant@tag`), else `checkpoint`."""
  return designer_zoo.checkpoint_of(name, candidates) or checkpoint


def _ordered(designers) -> list[str]:
  """`designers` in the tables' order (DESIGNERS'), each `variant@tag` after its variant."""
  return [d for base in DESIGNERS for d in [base] * (base in designers) + sorted(
      c for c in designers if '@' in c and _base(c) == base)]


def _sets_priors(name: str) -> bool:
  """An OmniPred designer that is given the case's prior studies (`set_priors`)."""
  return _base(name).startswith('omnipred_priors')


def signature(name: str, checkpoint: str) -> str | None:
  """What a raw run records of how it was made: the hash of the weights and of the configs,
  with the fields that act only with prior studies for the designers that set them (None:
  not an OmniPred designer). A run made otherwise (a default changed, new weights) runs again
  and no table reads it."""
  if not name.startswith('omnipred'):
    return None
  return designer_zoo.signature(pathlib.Path(checkpoint), *omnipred_configs(name, checkpoint),
                                with_priors=_sets_priors(name))


def designer_factory(name: str, priors, checkpoint: str | None):
  """-> (problem, seed) -> designer, with the prior studies set for the *_priors variants."""
  if name == 'random':
    return designer_zoo.designer_factory('random')
  if name.startswith('omnipred'):
    from designers.omnipred_designer import OmniPredDesigner  # pylint: disable=g-import-not-at-top
    from designers.lm_surrogate import LMSurrogate  # pylint: disable=g-import-not-at-top
    config, surrogate_config = omnipred_configs(name, checkpoint)
    surrogates = LMSurrogate.factory(surrogate_config)

    def make(problem, seed=None):
      designer = OmniPredDesigner(problem, seed=seed, surrogate_factory=surrogates,
                                  config=config)
      if _sets_priors(name):
        designer.set_priors([(p, t) for _, p, t in priors], names=[n for n, _, _ in priors])
      return designer
    return make
  import jax  # pylint: disable=g-import-not-at-top
  from vizier._src.algorithms.designers import gp_bandit  # pylint: disable=g-import-not-at-top

  def make_gp(problem, seed=None):
    designer = gp_bandit.VizierGPBandit(problem, rng=jax.random.PRNGKey(seed or 0))
    if name == 'gp_bandit_priors':
      designer.set_priors([vza.CompletedTrials(t) for _, _, t in priors])
    return designer
  return make_gp


def raw_path(designer: str, case: str, study: str, seed: int) -> pathlib.Path:
  return RAW / f'{designer}_{case}_{study}_{seed}.json'


def stored_run(designer: str, case: str, study: str, seed: int,
               sig: str | None) -> pathlib.Path | None:
  """The raw run of this designer, study and seed made with signature `sig`, if stored."""
  return run_store.stored(raw_path(designer, case, study, seed), sig)


def jobs(designers, seeds: tuple[int, ...] = SEEDS) -> list[tuple[str, str, str, str, int]]:
  out = []
  for case, study, prior_family in cases():
    for d in designers:
      if case == 'unrelated' and not d.startswith('omnipred'):
        continue  # the control is OmniPred's: with and without the unrelated priors
      out += [(d, case, study, prior_family, s) for s in seeds]
  return out


def run_all(todo, checkpoint: str, isolate: bool = True,
            candidates: dict[str, str] | None = None) -> None:
  weights = {d: checkpoint_for(d, checkpoint, candidates) for d in {j[0] for j in todo}}
  signatures = {d: signature(d, weights[d]) for d in weights}
  todo = [j for j in todo if not stored_run(*_key(j), signatures[j[0]])]
  stale = [j for j in todo if raw_path(*_key(j)).exists()]
  if stale:
    print(f'{len(stale)} raw run(s) were made with other weights or configs (or do not say '
          f'which): running them again, the old ones kept beside (e.g. '
          f'{raw_path(*_key(stale[0])).name})')
  todo = [j for j in todo if not _adopt(j, signatures[j[0]])]
  studies = {s.name: s for fam in FAMILIES for s in family(fam)}
  bar = tqdm(total=len(todo) * TRIALS, desc='transfer', dynamic_ncols=True)
  for designer, case, study, prior_family, seed in todo:
    bar.set_postfix_str(f'{designer} {case} {study} seed {seed}')
    if isolate and designer in ISOLATED:
      process_setup.run_in_own_process('benchmarks.transfer', '--designers', designer,
                                       '--job', f'{case},{study},{seed}')
      bar.update(TRIALS)
      continue
    priors = transfer_families.priors(case, study, prior_family)
    exptr = tuning_tasks.TaskExperimenter(studies[study])
    run = run_study(designer, designer_factory(designer, priors, weights[designer]), exptr,
                    TRIALS, seed=seed, progress=bar)
    run_store.write_run(raw_path(designer, case, study, seed), json.dumps({
        'values': [float(v) for v in run.values(exptr.metric)], 'seconds': run.seconds,
        'checkpoint': weights[designer] if designer.startswith('omnipred') else None,
        'signature': signatures[designer]}))
  bar.close()


def _key(job) -> tuple[str, str, str, int]:
  """A job's (designer, case, study, seed): what names its raw run."""
  return job[0], job[1], job[2], job[4]


def _adopt(job, sig: str | None) -> bool:
  """Another designer's run of the same study and seed made exactly as this one would be is
  copied as this one's (`run_store.adopt`). A designer that sets no priors makes the same run
  whichever case's priors the study has, so it also takes a run of the other case."""
  designer, case, study, seed = _key(job)
  sources = sorted(RAW.glob(f'*_{case}_{study}_{seed}.json'))
  if not _sets_priors(designer):
    sources += [raw_path(designer, c, study, seed) for c in CASES if c != case]
  return run_store.adopt(raw_path(*_key(job)), sources, sig)


def regrets(designers: tuple[str, ...] = DESIGNERS, seeds: tuple[int, ...] = SEEDS,
            checkpoint: str = str(SHIPPED_TRANSFER),
            candidates: dict[str, str] | None = None) -> dict:
  """(designer, case, study, seed) -> [TRIALS] normalised regret of the runs on disk made
  as each designer is now (`signature`)."""
  studies = {s.name: s for fam in FAMILIES for s in family(fam)}
  signatures = {d: signature(d, checkpoint_for(d, checkpoint, candidates)) for d in designers}
  out, refs = {}, {}
  for designer, case, study, _, seed in jobs(designers, seeds):
    path = stored_run(designer, case, study, seed, signatures[designer])
    if path is None:
      continue
    task = studies[study]
    if study not in refs:
      exptr = tuning_tasks.TaskExperimenter(task)
      sign = -1.0 if task.problem.metric_information.item().goal.is_maximize else 1.0
      draws = [exptr.score(c) for c in tuning_tasks.reference_configurations(task)]
      refs[study] = (sign, float(np.nanmin(sign * exptr.cache.values())),
                     float(np.nanmedian(sign * np.asarray(draws))))
    sign, best, rand = refs[study]
    v = sign * np.asarray(json.loads(path.read_text())['values'][:TRIALS], dtype=float)
    run_best = np.minimum.accumulate(np.where(np.isnan(v), np.inf, v))
    out[(designer, case, study, seed)] = np.clip((run_best - best) / max(rand - best, 1e-12),
                                                 0, None)
  return out


def _runs(regret: dict, designer: str, case: str, study: str, mark: int) -> np.ndarray:
  """The regret at `mark` trials of each seed's run of one designer on one study."""
  return np.asarray([regret[k][mark - 1] for k in regret if k[:3] == (designer, case, study)])


def _share_below(regret: dict, ours: str, other: str, case: str, names: list[str], mark: int
                 ) -> tuple[float, list[tuple[np.ndarray, np.ndarray]]]:
  """On what share of the studies both ran `ours`'s mean regret at `mark` is below `other`'s
  (ties count half); and the per-seed regrets of the pairs compared."""
  pairs = [(_runs(regret, ours, case, n, mark), _runs(regret, other, case, n, mark))
           for n in names]
  pairs = [(a, b) for a, b in pairs if len(a) and len(b)]
  wins = [1.0 if a.mean() < b.mean() else 0.5 if a.mean() == b.mean() else 0.0
          for a, b in pairs]
  return (float(np.mean(wins)) if wins else float('nan')), pairs


def _share_interval(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
  """The 90% interval of the share below (`_share_below`) when each study's seeds are drawn
  again with replacement, each designer's apart: how far the share could move by seeds."""
  rng = np.random.default_rng(_RESAMPLE_SEED)
  shares = []
  for _ in range(_RESAMPLES):
    means = [(rng.choice(a, len(a)).mean(), rng.choice(b, len(b)).mean()) for a, b in pairs]
    shares.append(np.mean([1.0 if a < b else 0.5 if a == b else 0.0 for a, b in means]))
  low, high = np.percentile(shares, [5, 95])
  return float(low), float(high)


def _comparisons(regret: dict, case: str, names: list[str], present: list[str]) -> list[str]:
  """Lines: on what share of left-out studies omnipred_priors's mean regret is below each
  other designer's (ties count half; with the share's 90% interval over seeds drawn again);
  on the unrelated control also how often it is no worse than without priors (above by no
  more than the larger seed spread of the two)."""
  lines = []
  for other in [d for d in present if d != 'omnipred_priors']:
    for m in MARKS:
      wins, pairs = _share_below(regret, 'omnipred_priors', other, case, names, m)
      if not pairs:
        continue
      low, high = _share_interval(pairs)
      text = (f'- omnipred_priors below {other} at {m} trials on {wins:.0%} of {len(pairs)}'
              f' left-out studies (seeds drawn again: {low:.0%}-{high:.0%})')
      if case == 'unrelated' and other == 'omnipred':
        level = np.mean([a.mean() <= b.mean() + max(a.std(), b.std()) for a, b in pairs])
        text += f'; no worse than it (within the seeds\' spread) on {level:.0%}'
      lines.append(text)
  return lines


def _no_priors(name: str, regret: dict) -> str:
  """The designer a prior-study setting is measured against: OmniPred without priors on the
  same weights (`omnipred@tag` for a candidate's variant, when it ran), else `omnipred`."""
  tag = name.partition('@')[2]
  same_weights = f'omnipred@{tag}'
  return same_weights if tag and any(k[0] == same_weights for k in regret) else 'omnipred'


def _settings_table(regret: dict) -> list[str]:
  """OmniPred's prior-study settings against OmniPred without priors (on the same weights),
  per case: the mean regret at each mark and the share of studies where the setting is below
  (ties half), over the studies the setting has run (named when not all)."""
  ran = _ordered({k[0] for k in regret})
  variants = [d for d in ran if _sets_priors(d)]
  if not variants:
    return []
  shown = [c for c in CASES if any(k[1] == c for k in regret)]
  lines = ['### OmniPred\'s prior-study settings against no priors', '',
           '| designer | ' + ' | '.join(f'{c} @ {" / ".join(map(str, MARKS))} | below no priors'
                                        for c in shown) + ' |',
           '|---|' + '---|---|' * len(shown)]
  candidates_alone = [d for d in ran if _base(d) == 'omnipred' and d != 'omnipred']
  for d in ['omnipred'] + candidates_alone + variants:
    cells = []
    for case in shown:
      names = sorted({k[2] for k in regret if k[1] == case and k[0] == d})
      if not names:
        cells += ['-', '-']
        continue
      means = [np.mean([_runs(regret, d, case, n, m).mean() for n in names]) for m in MARKS]
      everyone = len({k[2] for k in regret if k[1] == case})
      cells.append(' / '.join(f'{v:.3f}' for v in means)
                   + ('' if len(names) == everyone else f' ({len(names)} studies)'))
      shares = [_share_below(regret, d, _no_priors(d, regret), case, names, m)[0]
                for m in MARKS] if _sets_priors(d) else []
      cells.append(' / '.join('-' if np.isnan(v) else f'{v:.0%}' for v in shares))
    lines.append(f'| {d} | ' + ' | '.join(cells) + ' |')
  return lines + ['']


def aggregate(designers: tuple[str, ...] = DESIGNERS, table: str = 'transfer',
              seeds: tuple[int, ...] = SEEDS, case_subset: tuple[str, ...] = CASES,
              checkpoint: str = str(SHIPPED_TRANSFER),
              candidates: dict[str, str] | None = None) -> str:
  """Writes benchmarks/results/`table`.md and its convergence plot from the runs on disk of
  `designers` on `seeds` (made with `checkpoint`, a `variant@tag` with its candidate's), the
  left-out studies of `case_subset`."""
  regret = {k: v for k, v in regrets(designers, seeds, checkpoint, candidates).items()
            if k[1] in case_subset}
  order = _ordered(designers)
  lines = [f'Transfer benchmark: leave one study out of a family; {TRIALS} trials, seeds '
           f'{list(seeds)}; normalised regret (0 = best known, 1 = median random draw), mean '
           '± standard deviation over seeds.', '']
  for case in CASES:
    present = [d for d in order if any(k[0] == d and k[1] == case for k in regret)]
    if not present:
      continue
    names = sorted({k[2] for k in regret if k[1] == case})
    lines += [f'### Prior studies: {case}', '',
              '| left-out study | ' + ' | '.join(f'{d} @ {m}' for d in present for m in MARKS)
              + ' |', '|---|' + '---|' * (len(present) * len(MARKS))]
    for name in names:
      cells = []
      for d in present:
        for m in MARKS:
          vals = _runs(regret, d, case, name, m)
          cells.append(f'{vals.mean():.3f} ± {vals.std():.3f}' if len(vals) else '-')
      lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    cells = []
    for d in present:
      ran = [n for n in names if len(_runs(regret, d, case, n, MARKS[0]))]
      note = '' if len(ran) == len(names) else f' ({len(ran)} studies)'
      cells += [f'**{np.mean([_runs(regret, d, case, n, m).mean() for n in ran]):.3f}**{note}'
                for m in MARKS]
    lines.append(f'| mean over the {len(names)} studies (a designer still running: over those '
                 'it ran) | ' + ' | '.join(cells) + ' |')
    lines.append('')
    if 'omnipred_priors' in present:
      lines += _comparisons(regret, case, names, present) + ['']
  lines += _settings_table(regret)
  subset = '' if designers == DESIGNERS else f' --designers {",".join(designers)}'
  subset += run_store.checkpoint_flag(checkpoint, SHIPPED_TRANSFER)
  subset += ''.join(f' --candidate {tag}={path}' for tag, path in (candidates or {}).items())
  if seeds != SEEDS:
    subset += f' --seeds {",".join(map(str, seeds))}'
  if case_subset != CASES:
    subset += f' --cases {",".join(case_subset)}'
  then = '--aggregate' + (f'{subset} --table {table}' if subset else '')
  lines.append(f'Command: `python -m benchmarks.transfer{subset}` (then `{then}`).')
  text = '\n'.join(lines) + '\n'
  RESULTS.mkdir(parents=True, exist_ok=True)
  (RESULTS / f'{table}.md').write_text(text)
  plot(regret, RESULTS / f'{table}_convergence.png', order)
  return text


def plot(regret: dict, path: pathlib.Path, designers=DESIGNERS) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = [(case, fam) for case in CASES for fam in FAMILIES
            if any(k[1] == case and k[2].startswith(f'transfer_{fam}') for k in regret)]
  if not panels:
    return
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 2.8), squeeze=False)
  for ax, (case, fam) in zip(axes.flat, panels):
    regret_panel(ax, regret, designers,
                 lambda k, d, case=case, fam=fam: (k[0] == d and k[1] == case
                                                   and k[2].startswith(f'transfer_{fam}')),
                 f'{fam} ({case} priors)', TRIALS)
  save_grid(fig, axes, len(panels), 'normalised regret (mean over studies and seeds)',
            path)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--checkpoint', default=None,
                      help='OmniPred weights trained with prior studies (default: the shipped '
                      'transfer checkpoint, checkpoints.SHIPPED_TRANSFER)')
  parser.add_argument('--designers', default=None,
                      help='comma-separated subset; VARIANT@TAG: an OmniPred variant with the '
                      'weights --candidate TAG=PATH names')
  parser.add_argument('--candidate', action='append', default=[], metavar='TAG=PATH',
                      help='candidate weights (trained with prior studies) for VARIANT@TAG')
  parser.add_argument('--families', default=None, help='comma-separated subset')
  parser.add_argument('--cases', default=None,
                      help='comma-separated subset of related,unrelated (default: both)')
  parser.add_argument('--shard', default='0/1', help='i/n: run every n-th job from i')
  parser.add_argument('--job', default=None, help='CASE,STUDY,SEED: run one study here')
  parser.add_argument('--aggregate', action='store_true')
  parser.add_argument('--seeds', default=','.join(map(str, SEEDS)),
                      help='comma-separated; other seeds than the default check a setting on '
                      'runs it was not chosen on')
  parser.add_argument('--table', default=None,
                      help="with --aggregate and --designers or --seeds: the table's name "
                      'under benchmarks/results (the whole benchmark is `transfer`)')
  args = parser.parse_args(argv)
  designers = tuple(args.designers.split(',')) if args.designers else DESIGNERS
  seeds = tuple(int(x) for x in args.seeds.split(','))
  candidates = designer_zoo.parse_candidates(args.candidate)
  unknown = sorted(d for d in designers if _base(d) not in DESIGNERS
                   or ('@' in d and not d.startswith('omnipred')))
  if unknown:
    parser.error(f'--designers: unknown {unknown}; known: {", ".join(DESIGNERS)} (an OmniPred '
                 'one also as VARIANT@TAG)')
  try:
    for d in designers:
      designer_zoo.checkpoint_of(d, candidates)
  except ValueError as e:
    parser.error(str(e))
  wanted_cases = set(args.cases.split(',')) if args.cases else None
  if wanted_cases:
    known = {c for c, _, _ in cases()}
    if wanted_cases - known:
      parser.error(f'--cases: unknown {sorted(wanted_cases - known)}; known: {sorted(known)}')
  checkpoint = args.checkpoint or str(SHIPPED_TRANSFER)
  if args.job:
    case, study, seed = args.job.split(',')
    job = [j for j in jobs(tuple((args.designers or '').split(','))[:1], (int(seed),))
           if (j[1], j[2], j[4]) == (case, study, int(seed))]
    if not job:
      raise SystemExit(f'--job {args.job!r}: no such case, study and seed for {args.designers}.')
    run_all(job, checkpoint, isolate=False)
    return 0
  # A part of the benchmark: its table is not transfer.md (every designer's on the default
  # seeds and both cases, with the shipped weights).
  part = bool(args.designers or seeds != SEEDS or wanted_cases or args.checkpoint)
  if args.aggregate and part:
    if not args.table or args.table == 'transfer':
      parser.error('--aggregate with --designers, --seeds, --cases or --checkpoint writes a '
                   'table of those alone: name it with --table (benchmarks/results/transfer.md '
                   'is every designer\'s on the default seeds and both cases, with the shipped '
                   'weights)')
    print(aggregate(designers, args.table, seeds,
                    tuple(c for c in CASES if not wanted_cases or c in wanted_cases),
                    checkpoint, candidates))
    return 0
  if not args.aggregate:
    todo = jobs(designers, seeds)
    if args.families:
      todo = [j for j in todo if any(j[2].startswith(f'transfer_{f}_')
                                     for f in args.families.split(','))]
    if wanted_cases:
      todo = [j for j in todo if j[1] in wanted_cases]
    i, n = map(int, args.shard.split('/'))
    run_all(todo[i::n], checkpoint, candidates=candidates)
  if part or args.families:
    print('Runs stored; table them with --aggregate and the same flags, --table NAME.')
    return 0
  print(aggregate())
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
