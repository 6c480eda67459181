"""Read the user's stream and carbon CSV files into arrays. The only pandas import.

Errors name the file, the column or line, and what to do; they never surface as tracebacks.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from controller.errors import StalledError


class InputError(StalledError):
    """The user's data files or flags cannot be used as given."""


@dataclass(frozen=True)
class Stream:
    """Rows in time order: features, integer-coded labels, and the day each row belongs to."""

    name: str
    features: np.ndarray  # (rows, columns) float
    labels: np.ndarray  # (rows,) int
    day_of_row: np.ndarray  # (rows,) int, 0 = first day, non-decreasing
    first_day: date
    feature_names: tuple[str, ...]
    dropped_columns: tuple[str, ...]

    @property
    def days(self) -> int:
        return int(self.day_of_row[-1]) + 1

    def day_starts(self) -> np.ndarray:
        """Index of the first row of each day, plus the row count at the end (length days + 1)."""
        return np.searchsorted(self.day_of_row, np.arange(self.days + 1), side="left")


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the {what} as a CSV file (gzip is fine)")
    try:
        frame = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError as err:
        raise InputError(f"{path}: the file is empty; give a CSV with a header row and data rows") from err
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as err:
        raise InputError(f"{path}: cannot be read as CSV ({err}); check the file's format") from err
    if frame.empty:
        raise InputError(f"{path}: a header but no data rows")
    return frame


def _column(frame: pd.DataFrame, path: Path, name: str, flag: str) -> pd.Series:
    if name not in frame.columns:
        raise InputError(f"{path}: no column {name!r} (from {flag}); the columns are: {', '.join(frame.columns)}")
    return frame[name]


def _days_from_times(times: pd.Series, path: Path, name: str) -> tuple[np.ndarray, date]:
    parsed = pd.to_datetime(times, errors="coerce", utc=True)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise InputError(f"{path}:{bad[0] + 2}: {name} value {times.iloc[bad[0]]!r} is not a date/time; "
                         "use ISO 8601 such as 2021-03-01T12:00:00Z")
    if (parsed.diff().dropna() < pd.Timedelta(0)).any():
        line = int(np.flatnonzero((parsed.diff() < pd.Timedelta(0)).to_numpy())[0]) + 2
        raise InputError(f"{path}:{line}: rows are not in time order by {name}; sort the file by time first")
    first = parsed.iloc[0].normalize()
    return ((parsed - first) // pd.Timedelta(days=1)).to_numpy(dtype=int), first.date()


def load_stream(path: Path, label: str, time_column: str | None, rows_per_day: int | None,
                start: date, days: int | None = None) -> Stream:
    """The stream; features are every numeric column but the label and the time column."""
    frame = _read_csv(path, "stream")
    labels = _column(frame, path, label, "--label")
    if labels.isna().any():
        line = int(np.flatnonzero(labels.isna().to_numpy())[0]) + 2
        raise InputError(f"{path}:{line}: the label {label!r} is empty; drop or fill unlabelled rows")
    if time_column is not None:
        day_of_row, first_day = _days_from_times(_column(frame, path, time_column, "--time-column"), path,
                                                 time_column)
    else:
        assert rows_per_day is not None, "the CLI requires --time-column or --rows-per-day"
        day_of_row, first_day = np.arange(len(frame)) // rows_per_day, start
    rest = frame.drop(columns=[c for c in (label, time_column) if c is not None])
    numeric = rest.select_dtypes(include="number")
    dropped = tuple(c for c in rest.columns if c not in numeric.columns)
    if numeric.shape[1] == 0:
        raise InputError(f"{path}: no numeric feature columns besides {label!r}; encode features as numbers")
    infinite = np.isinf(numeric.to_numpy(dtype=float))
    if infinite.any():
        row, column = (int(i) for i in np.argwhere(infinite)[0])
        raise InputError(f"{path}:{row + 2}: column {numeric.columns[column]!r} is infinite; fix or drop that row")
    keep = day_of_row < days if days is not None else np.ones(len(frame), dtype=bool)
    codes = pd.factorize(labels, sort=True)[0]
    return Stream(path.name, numeric.to_numpy(dtype=float)[keep], codes[keep], day_of_row[keep], first_day,
                  tuple(numeric.columns), dropped)


def load_carbon(path: Path, time_column: str, value_column: str) -> tuple[np.ndarray, datetime]:
    """Hourly intensity (gCO2e/kWh) from its first hour on; gaps are filled from the previous hour."""
    frame = _read_csv(path, "carbon intensity")
    times = pd.to_datetime(_column(frame, path, time_column, "--carbon-time-column"), errors="coerce", utc=True)
    values = pd.to_numeric(_column(frame, path, value_column, "--carbon-column"), errors="coerce")
    bad = np.flatnonzero((times.isna() | values.isna()).to_numpy())
    if len(bad):
        raise InputError(f"{path}:{bad[0] + 2}: {time_column}/{value_column} is not a time and a number; "
                         "fix or drop that row")
    hourly = pd.Series(values.to_numpy(), index=times.dt.floor("h")).groupby(level=0).mean()
    hourly = hourly.resample("h").mean().ffill()
    if len(hourly) < 24:
        raise InputError(f"{path}: {len(hourly)} hours of carbon intensity; give at least one day of hourly data")
    first = hourly.index[0].to_pydatetime()
    return hourly.to_numpy(dtype=float), first.astimezone(UTC)


def stream_start(stream: Stream) -> datetime:
    return datetime.combine(stream.first_day, datetime.min.time(), UTC)


def day_time(stream: Stream, day: int, hour: int = 0) -> datetime:
    return stream_start(stream) + timedelta(days=day, hours=hour)
