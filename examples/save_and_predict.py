"""Save a fit, load it elsewhere, and label new data.

    python examples/save_and_predict.py [OUT_DIR]
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bayesgmm import GaussianMixtureBayes, GaussianMixtureEM, datasets

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-output")
out.mkdir(parents=True, exist_ok=True)

X = datasets.load_faithful()
new = pd.DataFrame({"eruptions": [1.8, 3.3, 4.6], "waiting": [52.0, 68.0, 85.0]})

em = GaussianMixtureEM(2, random_state=0).fit(X)
em.save(out / "faithful_em.nc")
print("EM labels:", GaussianMixtureEM.load(out / "faithful_em.nc").predict(new))

bayes = GaussianMixtureBayes(2, random_state=0).fit(X, method="map")
bayes.save(out / "faithful_map.nc")
loaded = GaussianMixtureBayes.load(out / "faithful_map.nc")
print("MAP membership probabilities:")
print(np.round(loaded.predict_proba(new), 3))
