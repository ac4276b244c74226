"""L-shaped (Benders) decomposition of the extensive model, for many scenarios.

The decomposition works on the *same* :class:`LinearModel` the extensive form
solves and cuts it along the model's own declarations (``model.core.Stage``): the
first-stage columns and rows form the master; every second-stage column and row
belongs to the recourse block of its key (today (scenario, mineral)), except the
families declared epigraph (the CVaR excess and its row), which span the blocks of a
scenario and are composed over their recourse (``Epigraph``). Nothing here knows a
family by name except the closed forms, which are used only for the blocks they are
proven to implement; every other block goes to the LP path. So a new family lands in
the right place by construction.

Master (MIP, small): min c_F z + sum_g theta_g over the first-stage rows and the
optimality cuts
    theta_g >= Q_g(z^k) + d_g^k . (z - z^k),
one theta per *aggregate* g: the key without its scenario (per mineral), so
Q_g(z) = sum of the expected recourse of the blocks of g; an epigraph adds thetas for
sum_s h_s max(0, L_s - F_s z + t_s(z)) over groups of its scenarios.

Recourse of a block, given z (``Recourse``):
* closed form (``ClosedForm``): blocks with only release r, unmet u and its damage pieces w,
  the demand and damage rows, a rate row per cell and a floor row per (s, p, m). With the row
  bounds b(z) = ub - A_F z read from the model, each cell's shortfall is cut into pieces (one,
  or its curve's), a cell serves its dearest pieces up to min(g_t, b_rate_t(z)), and the group
  takes the dearest of these up to b_floor(z); Q is the cost of the pieces left. The
  supergradient follows from the duals: the floor's price is the cost of the piece its limit
  falls in, a rate row's the cost of the dearest piece it leaves unmet less the floor's. With
  one segment of cost c: served = min(sum_t min(g_t, b_rate_t(z)), b_floor(z)), Q = c (G - served);
* pooled closed form (``Pooled``): blocks that also hold lending l and lending caps, when at z
  the closed form without lending costs no more than B(z), the cost of the block's pieces less
  the K(z) dearest tonnes of them (K the stock every giver may draw): a lower bound of the LP's
  recourse at every point (fees >= 0), so lending is idle and B's subgradient is a valid cut
  (proof in ``Pooled``); with one unit cost: every group exhausted, nobody has stock to lend;
* LP (``lp_batches``): one GLOP LP per batch of blocks of one aggregate, solved anew at each
  point with the coupled rows' bounds b(z); dQ/dz = -A_F^T lambda. A block gets its batch at
  the first point the closed forms cannot settle it; a batch is skipped at a point where the
  pooled closed form settles each of its blocks.

The lower bound is the master's proven bound, the upper bound the best evaluated
plan. The loop stops at the relative gap (at least 1e-9), at the time limit, or
when the master proposes a plan already evaluated (no cut can move it: the gap
left is the solvers' feasibility tolerance). A first phase on the master's LP
relaxation collects cuts cheaply.

Modules, in the order the loop uses them: ``structure`` (the cut along the declarations),
``closed_forms``, ``batches`` (recourse by LP, and ``Recourse`` over both paths), ``master``
(master problem and cuts), ``loop`` (``solve_benders``).
"""

from stockpile.solver.benders.loop import Progress, solve_benders

__all__ = ["Progress", "solve_benders"]
