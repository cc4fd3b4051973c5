"""RNN vs LSTM on long lags: the vanilla RNN fails as the lag grows, the LSTM does not; the gradient
reaching early steps vanishes in the RNN; clipping keeps the gradient steps bounded.

The lectures (RNNs): backpropagation through time multiplies the gradient by one recurrent
Jacobian per step, so in a vanilla (tanh) RNN it vanishes or explodes geometrically with the
distance, and long-range dependencies are not learned; the LSTM's additive cell state carries the
gradient; clipping the gradient norm stops explosions. Task: the adding problem (``dlcore.tasks``:
``x_t = (u_t, m_t)``, target the sum of the two marked ``u``; predicting the mean gives MSE
≈ 0.167, the bar to beat) with sequences of 40 steps whose first marker sits exactly ``lag`` steps
before the end (``config.dataset.task.lag``; 2000 training, 500 validation, 1000 test sequences).
Model ``rnn`` (``dlcore.nn.RNNModel``, one layer of 32 units, many-to-one linear head), Adam 1e-2,
batch 64, 1200 steps, squared-error loss. Axes: ``cell`` (rnn, lstm) × ``lag`` (5, 15, 35), both
structural (6 programs; the lag changes the dataset), and ``clip_norm`` (1 = clip the gradient's
global norm at 1; 1e9 = no clipping in effect) as a vectorized hyperparameter. Measured per run
(``config.measure.input_gradients``): ``train/input_grad_log10_first_last``, log10 of the gradient
norm of the loss with respect to the first step's input over that of the last step's, at the
trained parameters (the gradient norm vs time step, summarized; :func:`dlcore.train.input_gradient_norms`).
Compare ``train/grad_norm`` in ``point_curves``/``history.npz`` for the explosions. Run:

    dlcore run rnn_vs_lstm
    dlcore report runs/rnn_vs_lstm/<timestamp>

Faster look: dlcore run rnn_vs_lstm --config.num_steps=500 --config.sweep.seeds=4
Longer lags: --config.dataset.task.seq_len=100 --config.sweep.axes.lag.values="(10,50,90)" --config.num_steps=4000
"""

import ml_collections

from _base import base_config, study


def get_config() -> ml_collections.ConfigDict:
    c = base_config(hparams=dict(learning_rate=1e-2, clip_norm=1.0), batch_size=64, num_steps=1200,
                    eval_every=300, loss="mse",
                    measure=dict(input_gradients=dict(num_examples=500)))
    c.dataset = ml_collections.ConfigDict(dict(name="adding", split_seed=0, num_train=2000, num_val=500,
                                               num_test=1000, task=dict(seq_len=40, lag=5)))
    c.model = ml_collections.ConfigDict(dict(name="rnn", cell="lstm", hidden_size=32, head="many_to_one"))
    c.sweep = study(
        dict(
            cell=dict(path="model.cell", values=("rnn", "lstm")),
            lag=dict(path="dataset.task.lag", values=(5, 15, 35), integer=True),
            clip_norm=dict(values=(1.0, 1e9)),
        ),
        select=dict(metric="val/mse", group_by=("cell", "lag", "clip_norm")),  # every point is tested
    )
    mse = "test/mse: cell={} lag={} clip_norm={} {} cell={} lag={} clip_norm={}"
    c.claim = dict(
        text="On the adding problem the vanilla RNN gets worse as the lag grows (5 → 35) and loses to the "
             "LSTM at lag 35; less of the loss's gradient reaches the first step in the RNN than in the LSTM; "
             "without clipping the RNN does worse",
        checks=(
            mse.format("rnn", 35, 1, ">", "rnn", 5, 1),
            mse.format("lstm", 35, 1, "<", "rnn", 35, 1),
            "train/input_grad_log10_first_last: cell=rnn lag=35 clip_norm=1 < cell=lstm lag=35 clip_norm=1",
            mse.format("rnn", 35, 1, "<", "rnn", 35, "1e+09"),
        ),
    )
    return c
