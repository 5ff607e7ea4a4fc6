"""A form for an algorithm's parameters, built from its ParamSpecs: defaults, ranges, checks."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core.errors import InvalidInput

if TYPE_CHECKING:  # the module itself imports scikit-learn: seconds the UI thread must not wait
    from core.training.algorithms import Algorithm, ParamSpec, ParamValue


def _text(value: ParamValue) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


class ParamField:
    """One parameter's editor; ``value()`` parses through the spec and raises InvalidInput."""

    def __init__(self, spec: ParamSpec) -> None:
        self.spec = spec
        self.widget: QWidget
        if spec.kind == "bool":
            self.widget = QCheckBox()
            self.widget.setChecked(bool(spec.default))
        elif spec.kind == "choice":
            self.widget = QComboBox()
            self.widget.addItems(list(spec.choices))
            self.widget.setCurrentText(str(spec.default))
        elif spec.kind == "int" and not spec.allow_none:
            self.widget = QSpinBox()
            self.widget.setRange(int(spec.low or 0), int(min(spec.high or 2**31 - 1, 2**31 - 1)))
            self.widget.setValue(int(spec.default))  # type: ignore[arg-type]
        else:
            self.widget = QLineEdit(_text(spec.default))
            self.widget.setPlaceholderText(spec.describe_range())
        self.widget.setObjectName(f"param-{spec.name}")
        self.widget.setToolTip(f"{spec.help}\nrange: {spec.describe_range()}")

    def raw(self) -> object:
        w = self.widget
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentText()
        if isinstance(w, QSpinBox):
            return w.value()
        assert isinstance(w, QLineEdit)
        return w.text().strip()

    def value(self) -> ParamValue:
        return self.spec.parse(self.raw())

    def changed_signal(self) -> object:
        w = self.widget
        if isinstance(w, QCheckBox):
            return w.toggled
        if isinstance(w, QComboBox):
            return w.currentTextChanged
        if isinstance(w, QSpinBox):
            return w.valueChanged
        assert isinstance(w, QLineEdit), type(w)
        return w.textChanged


class ParamForm(QWidget):
    """Shows one algorithm's parameters; ``validity_changed(ok)`` follows every edit."""

    validity_changed = Signal(bool)

    def __init__(self) -> None:
        super().__init__()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.form = QFormLayout()
        outer.addLayout(self.form)
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        outer.addWidget(self.error)
        self.fields: dict[str, ParamField] = {}

    def set_algorithm(self, algorithm: Algorithm) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        for spec in algorithm.params:
            field = ParamField(spec)
            self.fields[spec.name] = field
            self.form.addRow(spec.name, field.widget)
            field.changed_signal().connect(self._validate)  # type: ignore[attr-defined]
        self._validate()

    def values(self) -> dict[str, ParamValue]:
        """Every parameter, checked; raises InvalidInput naming the first bad one."""
        return {name: field.value() for name, field in self.fields.items()}

    def changed_values(self) -> dict[str, ParamValue]:
        """Only what differs from the defaults: a search leaves the rest free to vary."""
        return {name: value for name, value in self.values().items()
                if value != self.fields[name].spec.default}

    def problem(self) -> str | None:
        try:
            self.values()
        except InvalidInput as exc:
            return str(exc)
        return None

    def _validate(self) -> None:
        problem = self.problem()
        self.error.setText(problem or "")
        self.validity_changed.emit(problem is None)
