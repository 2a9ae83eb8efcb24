# Loads matplotlib's pyplot with the Agg backend (files only, no display) for the quality tools in
# this folder, and saves figures; a missing matplotlib becomes one sentence saying what to install.
import os


class PlottingError(Exception):
    """One sentence saying why nothing can be drawn."""


def load_pyplot():
    """matplotlib.pyplot on the Agg backend."""
    try:
        import matplotlib
    except ImportError:
        raise PlottingError("matplotlib is missing; install Debian's python3-matplotlib "
                            "(apt-get install python3-matplotlib) and run this with /usr/bin/python3") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    return pyplot


def integer_ticks():
    """A tick locator for axes that count (epochs, updates)."""
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(integer=True)


def save(pyplot, figure, path):
    """Writes figure as a PNG at path (creating its folder) and closes it; returns path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
