"""Your own labelled texts and your own encoder checkpoint, in a full run (ns-3, scheduler, split
federated LoRA). Stand-ins here: three topics of generated sentences, and the packaged MiniLM saved
to a folder the way a fine-tuned checkpoint of yours would be."""

import csv
import random
import tempfile
from pathlib import Path

from transformers import AutoModel, AutoTokenizer

from cosim import load_config, run_experiment
from learning.encoder import default_model_path

work = Path(tempfile.mkdtemp(prefix="own-model-and-data-"))

# 1. Data: a CSV (or JSONL) with a `text` and a `label` column; labels are any strings.
topics = {"sport": "match goal team score player coach", "tech": "chip software phone data code cloud",
          "food": "bread soup cheese apple dinner spice"}
rng = random.Random(0)
with open(work / "topics.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["text", "label"])
    for label, words in topics.items():
        for _ in range(40):
            writer.writerow([" ".join(rng.choices(words.split(), k=6)), label])

# 2. Model: a local Hugging Face folder of a BERT, RoBERTa or DistilBERT encoder
#    (config.json, the weights and the tokenizer's files), as save_pretrained writes it.
model_dir = work / "my-encoder"
AutoModel.from_pretrained(default_model_path()).save_pretrained(model_dir)
AutoTokenizer.from_pretrained(default_model_path()).save_pretrained(model_dir)

# 3. The run: any preset, with the two keys pointing at them (on the command line:
#    cosim run smoke learning.data.dataset=topics.csv learning.model.path=my-encoder).
cfg = load_config("smoke", [f"learning.data.dataset={work / 'topics.csv'}",
                            f"learning.model.path={model_dir}", f"results_dir={work / 'results'}",
                            "learning.data.partition=iid", "rounds=3"])
run = run_experiment(cfg)
print(run.path, run.rounds_frame[["round", "delivered", "accuracy", "energy_j"]].to_string(index=False))
