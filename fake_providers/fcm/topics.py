"""FCM topics: who is subscribed to what, and which tokens a condition reaches.

Sans-IO. :class:`TopicRegistry` holds the subscriptions that the Instance ID API
(``/iid/v1:batchAdd`` and ``:batchRemove``) and the v1 registrations API change;
:func:`parse_condition` turns ``"'a' in topics && ('b' in topics || 'c' in topics)"``
into a :class:`Condition` with a small recursive-descent parser, refusing anything
malformed and more than :data:`MAX_CONDITION_TOPICS` topics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

TOPIC_NAME_RE = re.compile(r"^[a-zA-Z0-9\-_.~%]+$")
MAX_CONDITION_TOPICS = 5  # docs say 5, unconfirmed (docs/sources.md#fcm), so configurable
MAX_CONDITION_NESTING = 32  # PushLab's bound on parentheses: five topics never need more
MAX_CONDITION_TOKENS = 200  # PushLab's bound on a condition's length, for the same reason
MAX_TOPICS_PER_INSTANCE = 2000
MAX_TOKENS_PER_BATCH = 1000


class ConditionError(ValueError):
    """A condition string that FCM would refuse (INVALID_ARGUMENT)."""


# --- conditions -------------------------------------------------------------------

_TOKEN_RE = re.compile(r"""
    \s*(?:
      (?P<str>'(?P<sq>[^']*)'|"(?P<dq>[^"]*)")
    | (?P<op>&&|\|\||!|\(|\))
    | (?P<word>[A-Za-z]+)
    | (?P<bad>\S)
    )""", re.VERBOSE)


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed topic condition: its topics and a predicate over a token's topic set."""

    text: str
    topics: frozenset[str]
    test: Callable[[frozenset[str] | set[str]], bool]
    negated: bool  # contains '!': it can match tokens subscribed to none of its topics

    def matches(self, subscribed: frozenset[str] | set[str]) -> bool:
        return self.test(subscribed)


def _tokenize(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # only trailing whitespace is left
            break
        pos = m.end()
        if m.group("str") is not None:
            name = m.group("sq") if m.group("sq") is not None else m.group("dq")
            out.append(("str", name))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        elif m.group("word") is not None:
            out.append(("word", m.group("word")))
        else:
            raise ConditionError(f"unexpected character {m.group('bad')!r} at {m.start('bad')}")
        if len(out) > MAX_CONDITION_TOKENS:
            raise ConditionError(f"condition has more than {MAX_CONDITION_TOKENS} operators "
                                 "and operands")
    return out


class _Parser:
    """expr := and ('||' and)* ; and := unary ('&&' unary)* ;
    unary := '!'* operand ; operand := '(' expr ')' | STRING 'in' 'topics'

    Only a parenthesis recurses, at most MAX_CONDITION_NESTING deep."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0
        self.topics: set[str] = set()
        self.negated = False
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            want = value or ("a quoted topic name" if kind == "str" else kind)
            got = "end of condition" if tok is None else repr(tok[1])
            raise ConditionError(f"expected {want}, found {got}")
        self.i += 1
        return tok[1]

    def expr(self) -> Callable[[frozenset[str] | set[str]], bool]:
        parts = [self.conj()]
        while self.peek() == ("op", "||"):
            self.i += 1
            parts.append(self.conj())
        if len(parts) == 1:
            return parts[0]
        return lambda s, ps=tuple(parts): any(p(s) for p in ps)

    def conj(self) -> Callable[[frozenset[str] | set[str]], bool]:
        parts = [self.unary()]
        while self.peek() == ("op", "&&"):
            self.i += 1
            parts.append(self.unary())
        if len(parts) == 1:
            return parts[0]
        return lambda s, ps=tuple(parts): all(p(s) for p in ps)

    def unary(self) -> Callable[[frozenset[str] | set[str]], bool]:
        bangs = 0  # a run of '!' is read in a loop: only its parity matters
        while self.peek() == ("op", "!"):
            self.i += 1
            bangs += 1
        if bangs:
            self.negated = True
            inner = self.operand()
            return (lambda s: not inner(s)) if bangs % 2 else inner
        return self.operand()

    def operand(self) -> Callable[[frozenset[str] | set[str]], bool]:
        if self.peek() == ("op", "("):
            self.i += 1
            self.depth += 1
            if self.depth > MAX_CONDITION_NESTING:
                raise ConditionError(f"parentheses nest deeper than {MAX_CONDITION_NESTING}")
            inner = self.expr()
            self.take("op", ")")
            self.depth -= 1
            return inner
        name = self.take("str")
        if not TOPIC_NAME_RE.match(name):
            raise ConditionError(f"invalid topic name {name!r}")
        self.take("word", "in")
        self.take("word", "topics")
        self.topics.add(name)
        return lambda s: name in s


def parse_condition(text: str, max_topics: int = MAX_CONDITION_TOPICS) -> Condition:
    """Parse an FCM condition; raise :class:`ConditionError` if FCM would refuse it."""
    if not text.strip():
        raise ConditionError("empty condition")
    parser = _Parser(_tokenize(text))
    test = parser.expr()
    if parser.peek() is not None:
        raise ConditionError(f"unexpected {parser.peek()[1]!r} after the condition")
    if len(parser.topics) > max_topics:
        raise ConditionError(f"condition uses {len(parser.topics)} topics; at most "
                             f"{max_topics} are allowed")
    return Condition(text, frozenset(parser.topics), test, parser.negated)


# --- subscriptions ------------------------------------------------------------------

class TopicRegistry:
    """Subscriptions by token and by topic (one registry per project)."""

    def __init__(self, max_topics_per_token: int = MAX_TOPICS_PER_INSTANCE) -> None:
        self.max_topics_per_token = max_topics_per_token
        self._by_token: dict[str, set[str]] = {}
        self._by_topic: dict[str, set[str]] = {}

    def subscribe(self, token: str, topic: str) -> str | None:
        """Add one subscription; return an IID error code or None on success."""
        topics = self._by_token.setdefault(token, set())
        if topic in topics:
            return None
        if len(topics) >= self.max_topics_per_token:
            return "TOO_MANY_TOPICS"
        topics.add(topic)
        self._by_topic.setdefault(topic, set()).add(token)
        return None

    def unsubscribe(self, token: str, topic: str) -> bool:
        """Remove one subscription; True if it existed."""
        topics = self._by_token.get(token)
        if not topics or topic not in topics:
            return False
        topics.discard(topic)
        if not topics:
            del self._by_token[token]
        members = self._by_topic.get(topic)
        if members is not None:
            members.discard(token)
            if not members:
                del self._by_topic[topic]
        return True

    def forget(self, token: str) -> None:
        """Drop every subscription of a token (its app was uninstalled)."""
        for topic in list(self._by_token.get(token, ())):
            self.unsubscribe(token, topic)

    def topics_of(self, token: str) -> frozenset[str]:
        return frozenset(self._by_token.get(token, ()))

    def subscribers(self, topic: str) -> list[str]:
        return sorted(self._by_topic.get(topic, ()))

    def matching(self, condition: Condition) -> list[str]:
        """Tokens a condition reaches, in a stable order.

        A condition with ``!`` is tested against every token that has at least one
        subscription in the project (PushLab's choice: FCM's population for negation
        is not documented); otherwise only subscribers of its topics are candidates.
        """
        if condition.negated:
            candidates: Iterable[str] = self._by_token
        else:
            found: set[str] = set()
            for topic in condition.topics:
                found |= self._by_topic.get(topic, set())
            candidates = found
        by_token = self._by_token
        return sorted(t for t in candidates if condition.matches(by_token.get(t, set())))

    def topic_names(self) -> list[str]:
        return sorted(self._by_topic)

    def clear(self) -> None:
        self._by_token.clear()
        self._by_topic.clear()
