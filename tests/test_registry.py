"""The namespaced model registry keeps results_manager's API and refuses ambiguity."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydantic import BaseModel

from resultsfs import (
    DEFAULT_NAMESPACE,
    ModelConflictError,
    ModelLoadError,
    clear_registry,
    find_model_in_all_namespaces,
    find_model_namespace,
    get_model_class,
    get_models_in_namespace,
    get_namespaces,
    load_models,
    register_model,
)


class TestRegisterForms:
    def test_bare_decorator_uses_default_namespace(self) -> None:
        @register_model
        class A(BaseModel):
            x: int

        assert get_model_class("A") is A
        assert find_model_namespace(A) == DEFAULT_NAMESPACE == "default"

    def test_keyword_namespace(self) -> None:
        @register_model(namespace="ns1")
        class B(BaseModel):
            x: int

        assert get_model_class("B", namespace="ns1") is B
        assert get_model_class("B") is None

    def test_positional_namespace(self) -> None:
        @register_model("ns2")
        class C(BaseModel):
            x: int

        assert get_model_class("C", "ns2") is C

    def test_direct_call(self) -> None:
        class D(BaseModel):
            x: int

        assert register_model(D, namespace="ns3") is D
        assert get_models_in_namespace("ns3") == ["D"]

    def test_registering_the_same_class_twice_is_a_no_op(self) -> None:
        class E(BaseModel):
            x: int

        register_model(E)
        register_model(E)
        assert find_model_in_all_namespaces("E") == [("default", E)]

    def test_an_equal_class_under_a_taken_name_replaces_it_with_a_warning(self) -> None:
        """A notebook cell run twice: results_manager warns and replaces, and so do we."""

        def make() -> type[BaseModel]:
            class F(BaseModel):
                x: int

            return F

        first, second = make(), make()
        register_model(first)
        with pytest.warns(UserWarning, match="'F' is already registered in namespace 'default'. Replacing"):
            register_model(second)
        assert get_model_class("F") is second

    def test_a_class_with_other_fields_under_a_taken_name_is_refused(self) -> None:
        class F(BaseModel):
            x: int

        register_model(F)

        def other_fields() -> type[BaseModel]:
            class F(BaseModel):
                y: int

            return F

        def other_types() -> type[BaseModel]:
            class F(BaseModel):
                x: str

            return F

        with pytest.raises(
            ModelConflictError, match="'F' is already registered in namespace 'default'.*different fields"
        ):
            register_model(other_fields())
        with pytest.raises(ModelConflictError, match="different type for field 'x'"):
            register_model(other_types())
        assert get_model_class("F") is F

    def test_non_model_is_refused(self) -> None:
        with pytest.raises(TypeError, match="must be a subclass of BaseModel"):
            register_model(int)  # type: ignore[type-var]


class TestLookups:
    def test_model_in_several_namespaces_prefers_non_default_and_strict_raises(self) -> None:
        class G(BaseModel):
            x: int

        register_model(G)
        register_model(G, namespace="other")
        assert find_model_namespace(G) == "other"
        assert find_model_namespace(G, strict=True) == "other"  # only non-default ones are ambiguous
        register_model(G, namespace="third")
        with pytest.raises(ModelConflictError, match="multiple non-default namespaces: other, third"):
            find_model_namespace(G, strict=True)
        assert {ns for ns, _ in find_model_in_all_namespaces("G")} == {"default", "other", "third"}

    def test_unregistered_class_has_no_namespace(self) -> None:
        class H(BaseModel):
            x: int

        assert find_model_namespace(H) is None

    def test_namespaces_and_clear(self) -> None:
        class I1(BaseModel):
            x: int

        register_model(I1, namespace="zz")
        assert "zz" in get_namespaces()
        clear_registry("zz")
        assert "zz" not in get_namespaces()
        clear_registry()
        assert get_namespaces() == []

    def test_registration_is_thread_safe(self) -> None:
        classes = [type(f"T{i}", (BaseModel,), {"__annotations__": {"x": int}}) for i in range(200)]
        threads = [threading.Thread(target=register_model, args=(cls, "threads")) for cls in classes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(get_models_in_namespace("threads")) == 200


class TestLoadModels:
    def test_file_path_registers_and_loading_twice_is_harmless(self, tmp_path: Path) -> None:
        module = tmp_path / "my_models.py"
        module.write_text(
            "from pydantic import BaseModel\n"
            "from resultsfs import register_model\n"
            "@register_model(namespace='loaded')\n"
            "class Loaded(BaseModel):\n"
            "    v: int\n"
        )
        load_models(str(module))
        load_models(str(module))
        assert get_models_in_namespace("loaded") == ["Loaded"]

    def test_dotted_module(self) -> None:
        load_models("models")  # tests/models.py, on sys.path through conftest
        assert get_model_class("RunConfig", "sweep") is not None

    def test_missing_file_and_module_name_the_spec(self, tmp_path: Path) -> None:
        with pytest.raises(ModelLoadError, match="nope.py"):
            load_models(str(tmp_path / "nope.py"))
        with pytest.raises(ModelLoadError, match="no_such_module_xyz"):
            load_models("no_such_module_xyz")

    def test_broken_file_reports_the_error(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad_models.py"
        bad.write_text("raise RuntimeError('boom')\n")
        with pytest.raises(ModelLoadError, match="RuntimeError: boom") as info:
            load_models(str(bad))
        assert isinstance(info.value, ImportError)
