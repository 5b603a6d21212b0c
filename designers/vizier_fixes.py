"""A fix for google-vizier 0.1.24: nested conditional parameters survive the wire.

Vizier's `ParameterConfigConverter._set_child_parameter_configs` builds a child's
`ConditionalParameterSpec` from the child's proto and only afterwards adds the grandchildren
to that proto; protobuf copied it at construction, so every parameter below the first level
of children is silently dropped whenever a study config goes through gRPC (client -> server
-> Pythia). A two-level space (model -> kernel -> degree) reached the designer without
`degree`. `apply()` replaces that one method with one that recurses before the copy. Nothing
applies it on import: `OmniPredPolicyFactory` (every server with OMNIPRED) applies it when it is
built, and a Python client that sends a nested space calls `designers.vizier_fixes.apply()`
once before creating the study (README, "The designer").
"""

from __future__ import annotations

from vizier._src.pyvizier.oss import proto_converters
from vizier._src.service import study_pb2

_Converter = proto_converters.ParameterConfigConverter
_PARENT_VALUE_FIELDS = (('discrete_value_spec', 'parent_discrete_values'),
                        ('categorical_value_spec', 'parent_categorical_values'),
                        ('integer_value_spec', 'parent_int_values'))


def _set_children(cls, parent_proto, pc) -> None:
  """parent_proto.conditional_parameter_specs <- pc's children, each with its own subtree."""
  if not pc.child_parameter_configs:
    return
  parent_proto.ClearField('conditional_parameter_specs')
  field = next((f for spec, f in _PARENT_VALUE_FIELDS if parent_proto.HasField(spec)), None)
  if field is None:
    raise ValueError(f'parameter {pc.name!r}: a DOUBLE parameter cannot have children.')
  for child in pc.child_parameter_configs:
    child_proto = cls.to_proto(child.clone_without_children)
    _set_children(cls, child_proto, child)  # before the spec below copies child_proto
    spec = study_pb2.StudySpec.ParameterSpec.ConditionalParameterSpec(
        parameter_spec=child_proto)
    getattr(spec, field).values[:] = sorted(child.matching_parent_values)
    parent_proto.conditional_parameter_specs.append(spec)


def apply() -> None:
  """Installs the fix (idempotent)."""
  _Converter._set_child_parameter_configs = classmethod(_set_children)  # pylint: disable=protected-access
