"""Split federated LoRA: the learning side of the co-simulation.

The device keeps the embeddings and the task head, the server runs the encoder with peft LoRA; the
activations and their gradients cross the link as explicit tensors, counted in bytes. The round loop
drives one object::

    from learning.config import DataSettings, TrainerConfig
    from learning.trainer import SplitFedTrainer

    trainer = SplitFedTrainer(TrainerConfig(data=DataSettings(devices=10)))
    trainer.messages(3)                         # the round's protocol, message by message, predicted
    trainer.payload_bytes(3)                    # Payload(uplink_bytes, downlink_bytes), their sums
    updates = trainer.local_train([1, 3, 7])    # {device: Update}: states, measured messages, loss
    trainer.aggregate(updates, delivered={1, 7})
    trainer.evaluate()                          # test: accuracy, macro_f1, loss; validation: val_*

Modules: `config` (validated settings), `encoder` (offline loading), `split` (the two parts),
`payload` (the link), `step` (one training step), `data` and `partition`, `aggregate` (FedAvg and
the server optimiser), `aggregation` (the rules by name or import path, FedProx), `metrics`,
`trainer`.
"""
