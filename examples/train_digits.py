"""Train and test a digits MLP with a chosen optimizer, schedule and early stopping.

This is the job `make demo` runs (about ten seconds on 2 cores).
"""

import honing
from honing.data import load
from honing.models import create_model
from honing.optim import create_optimizer, create_schedule
from honing.train import EarlyStopping, TrainConfig, Trainer

honing.seed_everything(0)
data = load("sklearn:digits", val_size=0.15, test_size=0.15, scale="standard", seed=0)
model = create_model("mlp", data=data, hidden=[256, 128], dropout=0.1, init="kaiming_uniform")

config = TrainConfig(epochs=60, batch_size=64, seed=0, monitor="val_loss", keep_best=True)
optimizer = create_optimizer(model, "adamw", lr=3e-3, weight_decay=1e-2)   # no decay on biases/norms
schedule = create_schedule(optimizer, "cosine", epochs=config.epochs,
                           steps_per_epoch=config.steps_per_epoch(len(data.train)), warmup_steps=50)

trainer = Trainer(model, optimizer, loss="cross_entropy", schedule=schedule, config=config,
                  callbacks=[EarlyStopping(monitor="val_loss", patience=10)])
result = trainer.fit(data.train, data.val, checkpoint_dir="runs/digits")  # resume=True continues it
print(result.stop_reason, "best epoch", result.best_epoch)
print(trainer.evaluate(data.test))   # {'loss': ..., 'accuracy': ..., 'f1_macro': ..., ...}
