"""The prompt the model gets: chat template, transcript, placeholders, token for token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tui.core.personas import Example, Persona, load_library
from tui.core.prompt import (
    CHAT,
    TRANSCRIPT,
    PersonaPrompt,
    PromptBuilder,
    PromptFormat,
    TemplateError,
    Turn,
    choose_mode,
    render_chat,
)
from tui.core.turn_policy import clean_reply

SEED_BOB_PROMPT = (
    "Transcript of a dialog, where the User interacts with an Assistant named Bob. Bob is "
    "helpful, kind, honest, good at writing, and never fails to answer the User's requests "
    "immediately and with precision.\n\n"
    "User: Hello, Bob.\n"
    "Bob: Hello. How may I help you today?\n"
    "User: Please tell me the largest city in Europe.\n"
    "Bob: Sure. The largest city in Europe is Moscow, the capital of Russia.\n"
    "User: <message>\n"
    "Bob:"
)

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
NOW = datetime(2024, 5, 6, 7, 8)


def library_personas() -> dict[str, Persona]:
    """The bundled personas only (an empty user dir: never the user's real files)."""
    library = load_library(user_dir=Path("/nonexistent-llama-tui-test-dir"))
    assert not [p for p in library.problems if "unknown" not in p.reason], library.problems
    return library.personas


def word_tokens(text: str) -> list[int]:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return [hash(word) for word in text.split()]


# --- modes, placeholders, rendering without a model -------------------------------------


@pytest.mark.parametrize(
    ("persona_mode", "template", "expected"),
    [
        ("auto", CHATML, CHAT),
        ("auto", None, TRANSCRIPT),
        ("chat", CHATML, CHAT),
        ("chat", None, TRANSCRIPT),  # never a guessed format for a template-less model
        ("transcript", CHATML, TRANSCRIPT),
        ("transcript", None, TRANSCRIPT),
    ],
)
def test_choose_mode(persona_mode: str, template: str | None, expected: str) -> None:
    assert choose_mode(persona_mode, template) == expected


def test_bob_transcript_is_the_seed_prompt_exactly() -> None:
    persona = PersonaPrompt.from_persona(library_personas()["bob"], NOW)
    builder = PromptBuilder(PromptFormat(chat_template=None), word_tokens)
    built = builder.build(persona, [Turn("user", "<message>")], budget=10_000)
    assert built.mode == TRANSCRIPT
    assert built.text == SEED_BOB_PROMPT
    assert built.stops[:2] == ["\nUser:", "User:"]


def test_placeholders_are_replaced_not_evaluated() -> None:
    persona = Persona(
        id="p",
        name="P",
        ai_name="Ada",
        user_name="Bo",
        system="{{ai}} talks to {{ USER }} in {{year}} at {{time}}; {{ 7*7 }} {{user.__class__}}",
        examples=[Example(user="Hi {{char}}", ai="It is {{date}}, {{user}}.")],
    )
    prompt = PersonaPrompt.from_persona(persona, NOW)
    assert prompt.system == "Ada talks to Bo in 2024 at 07:08; {{ 7*7 }} {{user.__class__}}"
    assert prompt.examples == [Turn("user", "Hi Ada"), Turn("assistant", "It is 2024-05-06, Bo.")]


def test_chat_messages_are_data_not_template_code() -> None:
    turns = [Turn("user", "{{ 7*7 }} {% if true %}x{% endif %} {{ raise_exception('no') }}")]
    text = render_chat(CHATML, turns)
    assert "{{ 7*7 }} {% if true %}x{% endif %} {{ raise_exception('no') }}" in text


def test_hostile_template_is_refused_by_the_sandbox() -> None:
    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(TemplateError):
        render_chat(hostile, [Turn("user", "hi")])


def test_template_raise_exception_becomes_a_clear_error() -> None:
    strict = (
        "{% if messages[0]['role'] != 'user' %}"
        "{{ raise_exception('roles must alternate') }}{% endif %}"
    )
    with pytest.raises(TemplateError, match="roles must alternate"):
        render_chat(strict, [Turn("assistant", "hi")])


def test_template_features_render_as_llama_cpp_python_does() -> None:
    """loopcontrols, {% generation %}, tojson: as in Jinja2ChatFormatter.

    (Where llama.cpp's own Jinja differs, llama-tui follows llama.cpp: see
    test_chat_template.py, e.g. ``tools`` is undefined there, None here.)
    """
    formatter_module = pytest.importorskip("llama_cpp.llama_chat_format")
    template = (
        "{{ bos_token }}"
        "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}"
        "{% generation %}[{{ m['role'] }}]{{ m['content'] | tojson }}{% endgeneration %}"
        "{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}{{ eos_token }}"
    )
    turns = [Turn("system", "S <é>"), Turn("user", 'say "hi"'), Turn("assistant", "dropped")]
    ours = render_chat(template, turns, bos_token="<s>", eos_token="</s>")
    theirs = formatter_module.Jinja2ChatFormatter(template, eos_token="</s>", bos_token="<s>")(
        messages=[{"role": t.role, "content": t.content} for t in turns]
    )
    assert ours == theirs.prompt
    assert "dropped" not in ours


def test_clean_reply_removes_name_echo_and_space() -> None:
    persona = PersonaPrompt(system="", ai_name="Bob", user_name="User")
    assert clean_reply(" Bob: Hello there.  \n", persona, TRANSCRIPT) == "Hello there."
    assert clean_reply(" Hello Bob: there", persona, TRANSCRIPT) == "Hello Bob: there"
    assert clean_reply(" Bob: keeps in chat mode", persona, CHAT) == " Bob: keeps in chat mode"


# --- token by token, with the real tokenizer ---------------------------------------------


def copy_without_chat_template(src: Path, dst: Path) -> None:
    """SmolLM2's GGUF minus ``tokenizer.chat_template``: a stand-in for a base model."""
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(src)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(dst, arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if (
            field.name == gguf.Keys.General.ARCHITECTURE
            or field.name.startswith("GGUF.")
            or field.name.startswith(gguf.Keys.Tokenizer.CHAT_TEMPLATE)
        ):
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name,
            tensor.data.shape,
            tensor.data.dtype,
            tensor.data.nbytes,
            tensor.tensor_type,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()


def load_runner(path: Path) -> Any:
    from tui.core.engine_protocol import LoadModel, ModelReady
    from tui.engine.local.model import ModelRunner

    events: list[Any] = []
    runner = ModelRunner(events.append, lambda job_id: False, verbose=False)
    assert runner.load(LoadModel(str(path), n_ctx=2048)), events
    assert isinstance(events[-1], ModelReady)
    return runner


@pytest.fixture(scope="module")
def chat_runner(model_path: Path) -> Iterator[Any]:
    runner = load_runner(model_path)
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def templateless_path(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "smollm2-no-template.gguf"
    copy_without_chat_template(model_path, path)
    return path


@pytest.fixture(scope="module")
def base_runner(templateless_path: Path) -> Iterator[Any]:
    runner = load_runner(templateless_path)
    yield runner
    runner.close()


def assert_same_tokens(
    actual: list[int], expected: list[int], detok: Callable[[list[int]], bytes]
) -> None:
    """Token-by-token equality, with the first difference shown in words."""
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        if a != e:
            context = detok(expected[max(i - 8, 0) : i]).decode("utf-8", "replace")
            pytest.fail(
                f"token {i} differs after {context!r}: got {a} "
                f"({detok([a])!r}), expected {e} ({detok([e])!r})"
            )
    assert len(actual) == len(expected), f"{len(actual)} tokens, expected {len(expected)}"


USER_MESSAGE = "Hi {{user}}! What is 2+2? Answer in one word."


@pytest.mark.model
@pytest.mark.parametrize("persona_id", sorted(library_personas()))
def test_chat_mode_matches_llama_cpp_python(chat_runner: Any, persona_id: str) -> None:
    """Each bundled persona renders for SmolLM2 exactly as llama-cpp-python's formatter would."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    persona = PersonaPrompt.from_persona(library_personas()[persona_id], NOW)
    history = [Turn("user", USER_MESSAGE)]
    built = chat_runner.builder.build(persona, history, budget=2000)
    assert built.mode == CHAT
    fmt = chat_runner.builder.fmt
    messages = [{"role": "system", "content": persona.system}] if persona.system else []
    messages += [{"role": t.role, "content": t.content} for t in [*persona.examples, *history]]
    expected = Jinja2ChatFormatter(fmt.chat_template, fmt.eos_token, fmt.bos_token)(
        messages=messages
    )
    assert built.text == expected.prompt
    llm = chat_runner.llm
    # What create_chat_completion would have fed the model:
    expected_tokens = llm.tokenize(
        expected.prompt.encode("utf-8"), add_bos=not expected.added_special, special=True
    )
    assert_same_tokens(built.tokens, expected_tokens, llm.detokenize)
    # The user's "{{user}}" is their text, not a placeholder.
    assert USER_MESSAGE in built.text
    # The persona block leads the prompt and n_keep covers it.
    head = llm.detokenize(built.tokens[: built.n_keep], special=True).decode("utf-8")
    assert head.startswith(f"<|im_start|>system\n{persona.system}<|im_end|>")


def expected_transcript(persona: PersonaPrompt, message: str) -> str:
    lines = [f"{persona.system}\n\n"]
    for turn in [*persona.examples, Turn("user", message)]:
        name = persona.user_name if turn.role == "user" else persona.ai_name
        lines.append(f"{name}: {turn.content}\n")
    return "".join(lines) + f"{persona.ai_name}:"


@pytest.mark.model
@pytest.mark.parametrize("persona_id", sorted(library_personas()))
def test_templateless_model_gets_a_transcript(base_runner: Any, persona_id: str) -> None:
    """A model without a template never gets a guessed format (llama-cpp-python's llama-2)."""
    assert base_runner.info.has_chat_template is False
    persona = PersonaPrompt.from_persona(library_personas()[persona_id], NOW)
    built = base_runner.builder.build(persona, [Turn("user", USER_MESSAGE)], budget=2000)
    assert built.mode == TRANSCRIPT
    expected = expected_transcript(persona, USER_MESSAGE)
    assert built.text == expected
    for marker in ("[INST]", "<<SYS>>", "<|im_start|>", "<|im_end|>"):
        assert marker not in built.text
    llm = base_runner.llm
    assert_same_tokens(
        built.tokens, llm.tokenize(expected.encode("utf-8"), add_bos=True), llm.detokenize
    )


@pytest.mark.model
def test_bob_on_a_templateless_model_is_the_seed_prompt(base_runner: Any) -> None:
    persona = PersonaPrompt.from_persona(library_personas()["bob"], NOW)
    built = base_runner.builder.build(persona, [Turn("user", "<message>")], budget=2000)
    assert built.text == SEED_BOB_PROMPT
    llm = base_runner.llm
    seed_tokens = llm.tokenize(SEED_BOB_PROMPT.encode("utf-8"), add_bos=True, special=False)
    assert_same_tokens(built.tokens, seed_tokens, llm.detokenize)
