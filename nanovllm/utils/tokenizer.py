"""Text <-> token ids, from a model folder's ``tokenizer.json`` (and its chat template).

The ``tokenizers`` library reads the same ``tokenizer.json`` that Hugging Face models
ship, so encoding here matches the model's training. A chat template, when the folder
has one (``chat_template.jinja``, or the ``chat_template`` field of
``tokenizer_config.json``), turns a list of messages into the prompt text the model was
tuned on; rendering it needs ``jinja2``, imported only when a template is used.
"""

import functools
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer

from nanovllm.models.model_config import Kind, read_json_object, setting


def is_special_token(value) -> bool:
    """tokenizer_config.json writes a special token either as text or as {"content": text}."""
    return isinstance(value, str) or (isinstance(value, dict)
                                      and isinstance(value.get("content"), str))


SPECIAL_TOKEN = Kind(is_special_token, 'a string or {"content": string}')


class Tokenizer:
    def __init__(self, folder: str | Path):
        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; a model folder needs tokenizer.json")
        try:
            self.backend = HFTokenizer.from_file(str(path))
        except Exception as error:  # the tokenizers library raises a bare Exception
            raise ValueError(f"{path}: not a tokenizer the tokenizers library can read "
                             f"({error})") from None
        settings_path = folder / "tokenizer_config.json"
        settings = read_json_object(settings_path) if settings_path.is_file() else {}
        template_path = folder / "chat_template.jinja"
        self.chat_template: str | None = (template_path.read_text() if template_path.is_file()
                                          else settings.get("chat_template"))
        token = functools.partial(setting, settings, str(settings_path), kind=SPECIAL_TOKEN,
                                  default=None)
        self.eos_token: str | None = _token_text(token("eos_token"))
        self.bos_token: str | None = _token_text(token("bos_token"))

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text).ids

    def decode(self, token_ids: list[int]) -> str:
        return self.backend.decode(token_ids, skip_special_tokens=True)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Render chat messages ([{"role": ..., "content": ...}]) into one prompt string."""
        if self.chat_template is None:
            raise ValueError("this model folder has no chat template "
                             "(chat_template.jinja or tokenizer_config.json 'chat_template')")
        import jinja2  # only needed for chat

        def raise_exception(message):
            raise ValueError(f"chat template: {message}")

        environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
        template = environment.from_string(self.chat_template)
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=self.bos_token or "", eos_token=self.eos_token or "",
                               raise_exception=raise_exception)


def _token_text(token: str | dict | None) -> str | None:
    return token.get("content") if isinstance(token, dict) else token
