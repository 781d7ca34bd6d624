"""Saved KV states of a chat's branches: one per branch, so that switching back restores it."""

from __future__ import annotations

import numpy as np

from tui.engine.local.kv_states import SavedState, StateCache

PERSONA = [1, 2]
PREFIX = PERSONA + list(range(100, 400))  # the chat before the fork


def state(tokens: list[int], prompt_len: int) -> SavedState:
    return SavedState(
        np.asarray(tokens, dtype=np.intc), None, 10, len(PERSONA), 7, None, prompt_len
    )


def test_two_branches_of_a_chat_keep_a_state_each() -> None:
    cache = StateCache(max_entries=4, max_bytes=1000)
    a_prompt = PREFIX + list(range(1000, 1040))  # branch A's question
    a = state(a_prompt + list(range(2000, 2020)), len(a_prompt))  # and its answer
    b_prompt = PREFIX + list(range(3000, 3030))  # branch B forks after PREFIX
    b = state(b_prompt + list(range(4000, 4020)), len(b_prompt))
    assert cache.put(a) and cache.put(b)
    assert a in cache.entries and b in cache.entries  # B parts from A before A's last answer
    # Back on A, a turn on: the longest shared prefix is A's own state.
    back = np.asarray(a_prompt + list(range(2000, 2020)) + [5, 6, 7], dtype=np.intc)
    entry, shared = cache.best(back)
    assert entry is a and shared == len(a.tokens)


def test_the_next_turn_of_a_branch_replaces_its_state() -> None:
    cache = StateCache(max_entries=4, max_bytes=1000)
    prompt = PREFIX + list(range(1000, 1040))
    first = state(prompt + list(range(2000, 2020)), len(prompt))
    cache.put(first)
    # The answer comes back tokenized differently: the next state parts inside it.
    retokenized = prompt + list(range(2000, 2010)) + [9, 9] + list(range(5000, 5030))
    cache.put(state(retokenized, len(prompt) + 20))
    assert first not in cache.entries and len(cache) == 1


def test_states_of_unknown_prompt_length_follow_the_old_rule() -> None:
    """A state saved without its prompt length (0) is replaced by any newer one of its chat."""
    cache = StateCache(max_entries=4, max_bytes=1000)
    old = state(PREFIX + list(range(1000, 1040)), 0)
    cache.put(old)
    cache.put(state(PREFIX + list(range(3000, 3040)), len(PREFIX) + 40))
    assert old not in cache.entries and len(cache) == 1
