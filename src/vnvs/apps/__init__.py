"""Applications: the flows behind the vnvs commands (demo, render), above generators and estimators."""
