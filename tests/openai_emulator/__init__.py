"""An OpenAI API emulator for the test suite: validates requests, answers as the API does.

Test support code, not part of `tiered`. It checks every request body against the openai
SDK's own request types (`openai.types.chat.completion_create_params`,
`openai.types.responses.response_create_params`) and the documented rules a schema
cannot carry, and replies in OpenAI's shapes, streamed or not.
"""

from openai_emulator._emulator import Answer, Emulator, Seen, Step, StreamFault
from openai_emulator._render import Call, Reply, Tokens
from openai_emulator._strict import strict_schema_problems
from openai_emulator._validate import ApiError, check_chat, check_responses

__all__ = (
    "Answer",
    "ApiError",
    "Call",
    "Emulator",
    "Reply",
    "Seen",
    "Step",
    "StreamFault",
    "Tokens",
    "check_chat",
    "check_responses",
    "strict_schema_problems",
)
