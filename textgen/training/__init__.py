"""One training lifecycle for both modes (lifecycle.py), the fit loop and its callbacks
(fit.py), the options every run takes (options.py), the learning-rate rule (schedules.py)
and distribution strategies (distribute.py). Importing the package imports no TensorFlow."""
