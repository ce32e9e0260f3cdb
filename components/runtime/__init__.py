"""Runtime helpers that the components call from inside their step's pod; none of them is a component.

``trainjob``: the Kubeflow Trainer TrainJob client the pretrain component uses for multi-node runs.
"""
