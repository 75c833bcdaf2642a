"""Analysis tools: the empirical study of a pre-training run (`randommask analyze`).

* `measures`: pure measures (attention entropy and top-k share, effective rank, weight change,
  silhouettes of k-mer labels, what an isolated mask span hides);
* `probe`: reading a run folder and running its models on the held-out windows;
* `figures`: one PNG per figure, from measured values;
* `report`: the ``analyze`` command, ``figures.json`` and ``report.md``.
"""
