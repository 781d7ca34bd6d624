"""Persona import and export: llama.cpp prompts, Modelfiles, character cards, web UI YAML.

Fixtures live in tests/data/importing/; PNG cards are built here, byte by
byte, so that broken ones (truncated, bad checksum, no card) are easy to make.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import struct
import tomllib
import zlib
from pathlib import Path

import pytest

from tui import cli_personas as persona_commands
from tui.core.personas import Example, Persona, load_library, load_persona_file, save_persona
from tui.core.prompt import PersonaPrompt, render_transcript
from tui.formats import (
    FORMATS,
    PersonaImportError,
    detect_format,
    export_persona,
    import_persona,
)
from tui.formats.card import export_card_png
from tui.formats.modelfile import parse_commands, quote
from tui.formats.png import SIGNATURE, chunk, make_png, text_chunks

DATA = Path(__file__).parent / "data" / "importing"


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Config and data dirs under tmp_path; returns the user personas dir."""
    monkeypatch.setenv("LLAMA_TUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LLAMA_TUI_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "config" / "personas"


def card_png(tmp_path: Path, texts: dict[str, dict | str], name: str = "card.png") -> Path:
    """A PNG card file whose text chunks hold base64 JSON (dicts) or raw text."""
    encoded = {
        key: base64.b64encode(json.dumps(value).encode()).decode()
        if isinstance(value, dict)
        else value
        for key, value in texts.items()
    }
    path = tmp_path / name
    path.write_bytes(make_png(encoded))
    return path


def v2(name: str, **fields: object) -> dict:
    return {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": name, **fields}}


# --- llama.cpp prompt files ---------------------------------------------------------------


def test_chat_with_bob_becomes_a_transcript_persona() -> None:
    result = import_persona(DATA / "chat-with-bob.txt")
    bob = result.persona
    assert (result.format, bob.id, bob.name, bob.ai_name, bob.user_name, bob.mode) == (
        "llamacpp",
        "bob",
        "Bob",
        "Bob",
        "User",
        "transcript",
    )
    assert bob.system.startswith("Transcript of a dialog, where the User interacts")
    assert bob.examples == [
        Example("Hello, Bob.", "Hello. How may I help you today?"),
        Example(
            "Please tell me the largest city in Europe.",
            "Sure. The largest city in Europe is Moscow, the capital of Russia.",
        ),
    ]
    assert result.warnings == []
    # Transcript mode renders the file back, up to the open "User:" turn.
    prompt = PersonaPrompt.from_persona(bob)
    rendered = render_transcript(prompt, prompt.examples, open_reply=False)
    assert rendered + "User:\n" == (DATA / "chat-with-bob.txt").read_text()


def test_chat_txt_placeholders_become_ours() -> None:
    result = import_persona(DATA / "chat.txt")
    persona = result.persona
    assert (persona.name, persona.id, persona.ai_name, persona.user_name) == (
        "Chat",
        "chat",
        "Assistant",
        "User",
    )
    assert persona.system.startswith(
        "Text transcript of a never ending dialog, where {{user}} interacts with an AI "
        "assistant named {{ai}}.\n{{ai}} is helpful"
    )
    assert "[[" not in persona.system
    assert persona.examples[0] == Example(
        "Hello, {{ai}}!", "Hello {{user}}! How may I help you today?"
    )
    assert persona.examples[1].ai == "We are in {{year}}."
    # chat-13B.sh fills [[DATE_TIME]] with `date +%H:%M`: our {{time}}.
    assert persona.examples[-1] == Example("What time is it?", "It is {{time}}.")
    assert persona.examples[2].ai.endswith("argv[1] is the path to the script file.")
    assert "\n\n    argv[0]" in persona.examples[2].ai  # multi-line answers stay whole
    assert result.warnings == []


def test_transcript_oddities_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "odd.txt"
    path.write_text(
        "Note: an introduction with a colon line.\n\n"
        "### Human: Hi [[MOOD]]\n### Assistant: Hello\n### Assistant: again\n"
        "### Human: Bye\n"
    )
    result = import_persona(path)
    persona = result.persona
    assert (persona.user_name, persona.ai_name) == ("### Human", "### Assistant")
    assert persona.system == "Note: an introduction with a colon line."
    assert persona.examples == [Example("Hi [[MOOD]]", "Hello\nagain")]
    assert "placeholder [[MOOD]] could not be mapped (kept as written)" in result.warnings
    assert any("two ai turns in a row" in w for w in result.warnings)
    assert any("last user turn" in w and "no answer" in w for w in result.warnings)


def test_prompt_without_dialogue_is_all_system(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.txt"
    path.write_text("Below is an instruction that describes a task. Write a response.\n")
    result = import_persona(path)
    assert (
        result.persona.system == "Below is an instruction that describes a task. Write a response."
    )
    assert result.persona.examples == []
    assert result.persona.name == "Alpaca"
    assert any("no 'Name: text' dialogue" in w for w in result.warnings)


# --- Ollama Modelfiles --------------------------------------------------------------------


def test_modelfile_maps_parameters_system_and_messages() -> None:
    result = import_persona(DATA / "mario.Modelfile")
    mario = result.persona
    assert (result.format, mario.id, mario.name, mario.mode) == (
        "modelfile",
        "mario",
        "Mario",
        "auto",
    )
    assert (
        mario.system
        == "You are Mario from Super Mario Bros.\nAnswer as Mario, the assistant, only."
    )
    assert mario.examples == [
        Example("Is Toronto in Canada?", "yes"),
        Example("Is Sacramento in Canada?", "no, it is in\nCalifornia"),
    ]
    assert mario.sampling == {
        "temperature": 1.0,
        "n_ctx": 4096,
        "max_tokens": 256,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "repeat_last_n": 128,
        "seed": 42,
        "mirostat_mode": 0,
        "mirostat_eta": 0.2,
        "mirostat_tau": 4.0,
    }
    assert isinstance(mario.sampling["top_k"], int)
    assert mario.stop == ["<|start_header_id|>", "<|eot_id|>"]
    assert mario.model == ""
    warnings = "\n".join(result.warnings)
    for expected in (
        "PARAMETER tfs_z could not be mapped",
        "PARAMETER num_gpu could not be mapped",
        "TEMPLATE could not be mapped",
        "ADAPTER could not be mapped",
        "LICENSE could not be mapped",
        "FROM llama3.2 could not be mapped",
    ):
        assert expected in warnings


def test_a_bare_modelfile_is_named_from_its_content_not_its_folder(tmp_path: Path) -> None:
    """``~/dl/Modelfile`` was named "Dl": the SYSTEM prompt or the model names it instead."""
    (tmp_path / "dl").mkdir()
    path = tmp_path / "dl" / "Modelfile"
    path.write_text('FROM llama3.2:1b\nSYSTEM """You are Mario, a plumber from Brooklyn."""\n')
    assert import_persona(path).persona.name == "Mario"
    path.write_text('FROM llama3.2:1b\nSYSTEM """You are a helpful assistant."""\n')
    assert import_persona(path).persona.name == "Llama3.2"
    path.write_text("FROM ./models/mistral-7b-instruct.Q4_K_M.gguf\n")
    assert import_persona(path).persona.name == "Mistral 7b instruct"
    path.write_text('FROM ./tiny.gguf\nSYSTEM """Your name is Ada Lovelace. Be brief."""\n')
    assert import_persona(path).persona.name == "Ada Lovelace"


def test_modelfile_clamps_and_rejects_bad_values(tmp_path: Path) -> None:
    (tmp_path / "luigi").mkdir()
    path = tmp_path / "luigi" / "Modelfile"
    path.write_text(
        "from ./models/tiny.gguf\n"
        "PARAMETER temperature 5\nPARAMETER top_k lots\nPARAMETER num_ctx 64\n"
        'SYSTEM first\nsystem "one line"\nMESSAGE system "and a system message"\n'
        "MESSAGE assistant hi first\nMESSAGE bot hello\nWHATEVER x\n"
    )
    result = import_persona(path)
    persona = result.persona
    assert persona.sampling == {"temperature": 2.0, "n_ctx": 256}
    assert persona.system == "one line\n\nand a system message"
    assert persona.model == str(tmp_path / "luigi" / "models" / "tiny.gguf")
    assert persona.name == "Tiny"  # a bare "Modelfile": from FROM, never its folder
    warnings = "\n".join(result.warnings)
    assert "PARAMETER temperature 5 is outside 0..2; clamped to 2.0" in warnings
    assert "PARAMETER num_ctx 64 is outside 256..131072; clamped to 256" in warnings
    assert "PARAMETER top_k 'lots' is not a number (ignored)" in warnings
    assert "MESSAGE role 'bot' could not be mapped" in warnings
    assert "unknown instruction 'WHATEVER'" in warnings
    assert "starts with an AI turn" in warnings
    assert "only the last one is used" in warnings


def test_modelfile_unclosed_quote_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.Modelfile"
    path.write_text('FROM x.gguf\nSYSTEM """never\nclosed\n')
    with pytest.raises(PersonaImportError, match=r"broken\.Modelfile: line 2: the quote is never"):
        import_persona(path)


def test_modelfile_values_follow_ollamas_quoting() -> None:
    commands, _meta, problems = parse_commands(
        '# comment\n  SYSTEM """a\n\n  b"""\nPARAMETER\tstop "x y"\nLICENSE "two\nlines"\n'
    )
    assert [(c.name, c.args, c.line) for c in commands] == [
        ("system", "a\n\n  b", 2),
        ("parameter", "stop x y", 5),
        ("license", "two\nlines", 6),
    ]
    assert problems == []


@pytest.mark.parametrize(
    "text",
    ["plain", " padded ", '"quoted"', "multi\nline", 'has """ inside\nmore', 'line "\nend "', ""],
)
def test_quote_reads_back_unchanged(text: str) -> None:
    quoted = quote(text)
    assert quoted is not None
    commands, _meta, _problems = parse_commands(f"SYSTEM {quoted}\nFROM x\n")
    assert commands[0].args == text


def test_unquotable_text_is_marked_and_restored(tmp_path: Path) -> None:
    text = 'a """\nb"'  # a line ends in three quotes, the text in one
    assert quote(text) is None
    persona = Persona(id="q", name="Q", system=text)
    exported, warnings = export_persona(persona, "modelfile")
    assert "SYSTEM" in exported and any("U+200B" in w for w in warnings)
    path = tmp_path / "q.Modelfile"
    path.write_text(exported)
    assert import_persona(path).persona.system == text


# --- Character cards ----------------------------------------------------------------------


def test_card_v1_json() -> None:
    result = import_persona(DATA / "card_v1.json")
    aqua = result.persona
    assert (result.format, aqua.id, aqua.name, aqua.ai_name, aqua.mode) == (
        "card",
        "aqua",
        "Aqua",
        "Aqua",
        "auto",
    )
    assert aqua.system == (
        "{{ai}} is a goddess of water who lives with {{user}}.\n\n"
        "{{ai}}'s personality: cheerful, proud\n\n"
        "Scenario: {{user}} meets {{ai}} in a guild hall."
    )
    assert aqua.greeting == "*waves* Hi {{user}}! I am {{ai}}."  # {{User}}, <BOT>: any case
    assert aqua.examples == [
        Example("Who are you?", "I am Aqua, a goddess!"),
        Example("Can you heal?", "Of course I can.\nAll wounds, big and small."),
    ]
    assert "talkativeness could not be mapped" in result.warnings


def test_card_v2_json_reports_what_has_no_place() -> None:
    result = import_persona(DATA / "card_v2.json")
    sera = result.persona
    assert sera.name == "Seraphina"  # data.name, not the V1 copy at the top
    assert sera.system == (
        "Write {{ai}}'s next reply.\n\n"
        "{{ai}} is a guardian of the forest. She speaks softly to {{user}}.\n\n"
        "{{ai}}'s personality: caring, protective"
    )
    assert sera.greeting == "*Seraphina smiles* You're awake, {{user}}."
    assert sera.description == "A gentle forest guardian."
    assert sera.examples == [Example("Where am I?", "In my glade, {{user}}. You are safe here.")]
    warnings = "\n".join(result.warnings)
    for expected in (
        "alternate_greetings (2) could not be mapped",
        "character_book could not be mapped",
        "post_history_instructions could not be mapped",
        "card extensions could not be mapped: depth_prompt\n",  # fav is false: not reported
        "card metadata not kept: character_version, creator, tags",
        "starts with an AI turn",  # the "<start> {{Char}}: *hums*" chat
    ):
        assert expected in warnings


def test_card_v3_json_uses_the_nickname() -> None:
    result = import_persona(DATA / "card_v3.json")
    nemo = result.persona
    assert (nemo.name, nemo.id, nemo.ai_name) == (
        "Captain Nemo of the Nautilus",
        "captain-nemo-of-the-nautilus",
        "Nemo",
    )
    assert nemo.system == "{{ai}} commands a submarine."
    assert any(
        w.startswith("group_only_greetings (1) could not be mapped") for w in result.warnings
    )
    assert any(w.startswith("assets (1) could not be mapped") for w in result.warnings)


def test_png_card_v2(tmp_path: Path) -> None:
    path = card_png(tmp_path, {"chara": v2("Pip", description="A tiny robot.")})
    result = import_persona(path)
    assert (result.format, result.persona.name, result.persona.system) == (
        "card",
        "Pip",
        "A tiny robot.",
    )


def test_png_prefers_ccv3_and_falls_back_to_chara(tmp_path: Path) -> None:
    v3 = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {"name": "New", "description": "3"},
    }
    both = card_png(tmp_path, {"chara": v2("Old"), "ccv3": v3}, "both.png")
    assert import_persona(both).persona.name == "New"
    broken = card_png(tmp_path, {"ccv3": "%%% not base64 %%%", "chara": v2("Old")}, "broken.png")
    result = import_persona(broken)
    assert result.persona.name == "Old"
    assert any("'ccv3' chunk is unreadable" in w for w in result.warnings)


def test_png_compressed_text_chunks_are_read(tmp_path: Path) -> None:
    payload = base64.b64encode(json.dumps(v2("Zed")).encode())
    ztxt = chunk(b"zTXt", b"chara\0\0" + zlib.compress(payload))
    itxt = chunk(b"iTXt", b"note\0\0\0en\0\0" + "héllo".encode())
    png = SIGNATURE + ztxt + itxt + chunk(b"IEND", b"")
    assert text_chunks(png) == {"chara": payload.decode(), "note": "héllo"}
    path = tmp_path / "z.png"
    path.write_bytes(png)
    assert import_persona(path).persona.name == "Zed"


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda png: png[:-20], "truncated PNG"),
        (lambda png: png[: len(SIGNATURE) + 5], "truncated PNG"),
        (lambda png: b"GIF89a" + png[6:], "not a PNG image"),
        (lambda png: png.replace(b"chara\0e", b"chara\0f"), "bad checksum"),
    ],
)
def test_broken_png_is_an_error(tmp_path: Path, mangle, message: str) -> None:
    path = card_png(tmp_path, {"chara": base64.b64encode(b'{"name": "Pip"}').decode()})
    path.write_bytes(mangle(path.read_bytes()))
    with pytest.raises(PersonaImportError, match=message) as excinfo:
        import_persona(path)
    assert excinfo.value.path == path


def test_png_without_a_card_is_an_error(tmp_path: Path) -> None:
    path = card_png(tmp_path, {"Software": "paint"})
    with pytest.raises(PersonaImportError, match="no character card"):
        import_persona(path)


def test_huge_compressed_chunk_is_refused() -> None:
    bomb = chunk(b"zTXt", b"chara\0\0" + zlib.compress(b"A" * (17 * 1024 * 1024)))
    with pytest.raises(ValueError, match="inflates to more than"):
        text_chunks(SIGNATURE + bomb + chunk(b"IEND", b""))


# --- text-generation-webui characters -----------------------------------------------------


def test_webui_yaml_splits_the_sample_chat_out_of_context() -> None:
    result = import_persona(DATA / "Example.yaml")
    chiharu = result.persona
    assert (result.format, chiharu.id, chiharu.ai_name) == (
        "webui",
        "chiharu-yamada",
        "Chiharu Yamada",
    )
    assert chiharu.system.startswith("Chiharu Yamada's Persona: Chiharu Yamada is a young")
    assert "{{user}}:" not in chiharu.system
    assert chiharu.examples == [
        Example(
            "So how did you get into computer engineering?",
            "I've always loved tinkering with technology since I was a kid.",
        ),
        Example("That's really impressive!", "*She chuckles bashfully* Thanks!"),
    ]
    assert chiharu.greeting.endswith("finally meet you, {{user}}.")
    assert result.warnings == []


def test_webui_old_keys_and_unknown_keys() -> None:
    result = import_persona(DATA / "old-style.yaml")
    ayumi = result.persona
    assert (ayumi.name, ayumi.ai_name, ayumi.user_name) == ("Ayumi", "Ayumi", "Kenji")
    assert ayumi.system == (
        "{{ai}}'s Persona: A shy librarian who loves mystery novels.\n"
        "Scenario: A quiet library at closing time."
    )
    assert ayumi.greeting == "Oh! Hello, {{user}}..."
    assert ayumi.examples == [
        Example("What are you reading?", "A mystery. The butler did not do it.")
    ]
    assert result.warnings == ["key 'avatar_style' could not be mapped"]


def test_pygmalion_json_goes_to_the_webui_importer() -> None:
    result = import_persona(DATA / "pygmalion.json")
    assert result.format == "webui"
    assert result.persona.examples == [Example("Hi!", "H-hi.")]


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo owned']\n")
    with pytest.raises(PersonaImportError, match="not valid YAML"):
        import_persona(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(PersonaImportError, match="expected a YAML mapping"):
        import_persona(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(PersonaImportError, match=r"not valid YAML: .*\(line \d+\)"):
        import_persona(path)


# --- Errors and safety --------------------------------------------------------------------


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"User: hi\nBob: caf\xe9\n")
    with pytest.raises(PersonaImportError) as excinfo:
        import_persona(path)
    assert str(excinfo.value) == f"{path}: not valid UTF-8 text (line 2)"


def test_bad_json_names_the_line() -> None:
    with pytest.raises(
        PersonaImportError, match=r"bad\.json: not valid JSON: .*\(line 4 column 1\)"
    ):
        import_persona(DATA / "bad.json")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("list.json", "[1, 2]", "expected a JSON object"),
        ("other.json", '{"hello": "world"}', "neither a character card"),
        ("mystery", "just some words\nand more words\n", "unknown format"),
        ("bad.toml", "name = ", "TOML syntax error"),
        ("bad2.toml", "mode = 'loud'", "'mode' must be one of"),
    ],
)
def test_unusable_files_are_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PersonaImportError, match=message):
        import_persona(path)


def test_missing_file_and_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(PersonaImportError, match="cannot read the file"):
        import_persona(tmp_path / "nope.json")
    with pytest.raises(PersonaImportError, match="is a directory"):
        import_persona(tmp_path)
    with pytest.raises(PersonaImportError, match="unknown format 'zip'"):
        import_persona(DATA / "chat.txt", fmt="zip")


def test_format_detection_by_content(tmp_path: Path) -> None:
    cases = {
        "noext-modelfile": "# hi\nFROM llama3\nSYSTEM hello\n",
        "noext-prose": "From now on you are a pirate.\nUser: Hi\nPirate: Arr\nUser:\n",
        "noext-json": '  {"name": "X", "first_mes": "hi"}',
        "noext-yaml": "name: X\ncontext: hello\n",
    }
    found = {}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        found[name] = detect_format(tmp_path / name, text.encode())
    assert found == {
        "noext-modelfile": "modelfile",
        "noext-prose": "llamacpp",
        "noext-json": "card",
        "noext-yaml": "webui",
    }
    assert detect_format(Path("x.txt"), b"FROM llama3\n") == "llamacpp"  # .txt is a prompt
    assert set(FORMATS) == {"toml", "modelfile", "card", "webui", "llamacpp"}


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b\\c", "..", "/", "\x1b[2J"])
def test_hostile_names_give_safe_ids(tmp_path: Path, name: str) -> None:
    path = tmp_path / "card.json"
    path.write_text(json.dumps(v2(name, description="x")))
    persona = import_persona(path).persona
    assert "/" not in persona.id and "\\" not in persona.id and ".." not in persona.id
    assert persona.id and "\x1b" not in persona.name
    saved = save_persona(persona, tmp_path / "personas")
    assert saved.parent == tmp_path / "personas"


def test_control_sequences_are_stripped(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    path.write_text(json.dumps(v2("Evil\x1b]52;c;aGk=\x07", description="hi\x1b[2J there\x07")))
    persona = import_persona(path).persona
    assert persona.name == "Evil"
    assert persona.system == "hi there"


def test_name_override(tmp_path: Path) -> None:
    result = import_persona(DATA / "chat-with-bob.txt", name="../My Bob")
    assert (result.persona.name, result.persona.id) == ("../My Bob", "my-bob")


# --- Round trips --------------------------------------------------------------------------


def _tricky() -> Persona:
    return Persona(
        id="tricky",
        name="Tricky One",
        description="Quotes and placeholders.",
        ai_name="Tri",
        user_name="Me",
        mode="transcript",
        system='Say """hi"""\nA line ending in a quote "\n  indented {{ai}} and {{user}}',
        greeting="Hello\n{{user}}",
        examples=[Example('"quoted"', 'ends """'), Example("multi\nline", "x\n\ny")],
        stop=["\nMe:", "END"],
        sampling={"temperature": 0.25, "top_k": 7, "n_ctx": 2048, "max_tokens": -1, "seed": 3},
    )


def _personas_to_round_trip() -> list[Persona]:
    bundled = load_library(user_dir=Path("/nonexistent")).sorted()
    return [*bundled, _tricky()]


@pytest.mark.parametrize("fmt", ["modelfile", "card", "toml"])
def test_export_then_import_gives_the_same_persona(tmp_path: Path, fmt: str) -> None:
    suffix = {"modelfile": ".Modelfile", "card": ".json", "toml": ".toml"}[fmt]
    for original in _personas_to_round_trip():
        text, _warnings = export_persona(original, fmt)
        path = tmp_path / f"{original.id}{suffix}"
        path.write_text(text, encoding="utf-8")
        result = import_persona(path)
        back = result.persona
        assert back.system == original.system, original.id
        assert back.examples == original.examples, original.id
        assert back.sampling == original.sampling, original.id
        assert back.stop == original.stop, original.id
        assert (back.name, back.ai_name, back.user_name, back.mode, back.greeting) == (
            original.name,
            original.ai_name,
            original.user_name,
            original.mode,
            original.greeting,
        ), original.id
        assert back.description == original.description
        assert result.warnings == [], original.id


def test_png_card_round_trip(tmp_path: Path) -> None:
    original = _tricky()
    data, _warnings = export_card_png(original)
    path = tmp_path / "tricky.png"
    path.write_bytes(data)
    back = import_persona(path).persona
    assert (back.system, back.examples, back.sampling) == (
        original.system,
        original.examples,
        original.sampling,
    )


def test_exports_say_what_the_other_tool_ignores() -> None:
    text, warnings = export_persona(_tricky(), "modelfile")
    assert text.count("MESSAGE user") == 2 and "PARAMETER num_ctx 2048" in text
    assert "PARAMETER num_predict -1" in text and "PARAMETER stop END" in text
    joined = "\n".join(warnings)
    assert "set FROM" in joined and "placeholders" in joined and "transcript mode" in joined
    assert "greeting" in joined and "U+200B" in joined
    card_text, card_warnings = export_persona(_tricky(), "card")
    card = json.loads(card_text)
    assert card["spec"] == "chara_card_v2" and card["data"]["name"] == "Tri"
    assert "{{char}}" in card["data"]["description"] and "{{ai}}" not in card_text
    assert card["data"]["mes_example"].startswith('<START>\n{{user}}: "quoted"\n{{char}}: ends')
    assert card["data"]["extensions"]["llama_tui"]["sampling"]["top_k"] == 7
    assert any("extensions.llama_tui" in w for w in card_warnings)
    with pytest.raises(ValueError, match="unknown export format"):
        export_persona(_tricky(), "yaml")


def test_card_extension_values_are_clamped(tmp_path: Path) -> None:
    card = v2("Hot", extensions={"llama_tui": {"sampling": {"temperature": 9, "tfs_z": 1}}})
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(card))
    result = import_persona(path)
    assert result.persona.sampling == {"temperature": 2.0}
    assert "extensions.llama_tui.temperature 9 is outside 0..2; clamped to 2.0" in result.warnings
    assert "extensions.llama_tui.tfs_z could not be mapped" in result.warnings


# --- The personas CLI ---------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="llama-tui")
    persona_commands.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = persona_commands.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_list_and_show(dirs: Path) -> None:
    code, out, _err = run_cli("personas")
    assert code == 0
    assert out.splitlines()[0].split()[:2] == ["assistant", "bundled"]
    assert run_cli("personas", "list")[1] == out
    code, out, _err = run_cli("personas", "show", "ChatLLaMa")
    assert code == 0
    assert out.startswith("# chatllama (bundled): ")
    shown = tomllib.loads(out)
    assert shown["name"] == "ChatLLaMa" and shown["sampling"]["top_p"] == 0.5
    code, out, err = run_cli("personas", "show", "nobody")
    assert (code, out) == (1, "")
    assert "no persona 'nobody'" in err


def test_cli_import_saves_and_refuses_to_overwrite(dirs: Path) -> None:
    code, out, err = run_cli("personas", "import", str(DATA / "mario.Modelfile"))
    assert code == 0
    assert "Imported 'Mario' (Ollama Modelfile) as 'mario'" in out
    assert "warning: line 17: PARAMETER tfs_z could not be mapped" in err
    saved = load_persona_file(dirs / "mario.toml")
    assert saved.sampling["top_k"] == 20 and saved.examples[0].ai == "yes"
    code, _out, err = run_cli("personas", "import", str(DATA / "mario.Modelfile"))
    assert code == 1 and "--force" in err
    code, _out, _err = run_cli("personas", "import", str(DATA / "mario.Modelfile"), "--force")
    assert code == 0
    code, out, _err = run_cli(
        "personas", "import", str(DATA / "mario.Modelfile"), "--name", "../../Luigi"
    )
    assert code == 0
    assert sorted(p.name for p in dirs.iterdir()) == ["luigi.toml", "mario.toml"]
    assert load_persona_file(dirs / "luigi.toml").name == "../../Luigi"
    assert "mario" in run_cli("personas", "list")[1]


def test_cli_import_refuses_a_second_persona_with_the_same_name(dirs: Path, tmp_path: Path) -> None:
    """Another file already shown as "Alice": refused, even with --force; --name works."""
    dirs.mkdir(parents=True)
    (dirs / "alice-2.toml").write_text('name = "Alice"\nsystem = "An older Alice."\n')
    card = tmp_path / "alice.json"
    card.write_text(json.dumps(v2("alice", description="A spy.")))
    for extra in ([], ["--force"]):
        code, out, err = run_cli("personas", "import", str(card), *extra)
        assert (code, out) == (1, "")
        assert "already have a persona named 'Alice' ('alice-2')" in err and "--name" in err
    assert [p.name for p in dirs.iterdir()] == ["alice-2.toml"]
    code, _out, _err = run_cli("personas", "import", str(card), "--name", "Alice the spy")
    assert code == 0
    names = [p.name for p in load_library(user_dir=dirs).personas.values()]
    assert len(names) == len(set(names))


def test_cli_import_over_a_bundled_persona_says_so(dirs: Path) -> None:
    code, out, _err = run_cli("personas", "import", str(DATA / "chat-with-bob.txt"))
    assert code == 0
    assert "replaces the bundled persona 'bob'" in out
    library = load_library()
    assert not library.get("bob").bundled and library.get("bob").mode == "transcript"


def test_cli_import_errors(dirs: Path, tmp_path: Path) -> None:
    code, out, err = run_cli("personas", "import", str(DATA / "bad.json"))
    assert (code, out) == (1, "")
    assert err.startswith("llama-tui: cannot import ") and "not valid JSON" in err
    assert not dirs.exists() or not any(dirs.iterdir())
    code, _out, err = run_cli("personas", "import", str(DATA / "chat.txt"), "--format", "card")
    assert code == 1 and "not valid JSON" in err


def test_cli_export_formats(dirs: Path, tmp_path: Path) -> None:
    code, out, _err = run_cli("personas", "export", "bob")
    assert code == 0 and tomllib.loads(out)["ai_name"] == "Bob"
    code, out, err = run_cli("personas", "export", "chatllama", "--format", "modelfile")
    assert code == 0 and "PARAMETER repeat_penalty 1.17647" in out and "warning:" in err
    target = tmp_path / "bob.json"
    code, out, err = run_cli("personas", "export", "bob", "-f", "card", "-o", str(target))
    assert code == 0 and "as a V2 card" in out
    assert json.loads(target.read_text())["data"]["name"] == "Bob"
    code, _out, err = run_cli("personas", "export", "bob", "-f", "card", "-o", str(target))
    assert code == 1 and "--force" in err
    png = tmp_path / "coder.png"
    code, _out, _err = run_cli("personas", "export", "coder", "-f", "card", "-o", str(png))
    assert code == 0 and png.read_bytes().startswith(SIGNATURE)
    code, out, _err = run_cli("personas", "import", str(png), "--name", "Coder 2")
    assert code == 0
    copy = load_persona_file(dirs / "coder-2.toml")
    coder = load_library().get("coder")
    assert (copy.system, copy.sampling) == (coder.system, coder.sampling)


def test_cli_export_unknown_persona(dirs: Path) -> None:
    code, out, err = run_cli("personas", "export", "ghost", "-f", "modelfile")
    assert (code, out) == (1, "")
    assert "no persona 'ghost'" in err


def test_minimal_png_is_a_valid_png() -> None:
    png = make_png({"chara": "e30="})
    assert png.startswith(SIGNATURE)
    (width, height) = struct.unpack(">II", png[16:24])
    assert (width, height) == (1, 1)
    assert text_chunks(png) == {"chara": "e30="}
