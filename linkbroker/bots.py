"""Telling bots and link-preview fetchers from people, by their user agent.

A chat app that unfurls a link, a search crawler or a script fetching a URL is not
a person following it. Such clicks are recorded with a reason and kept out of the
human count, so that pasting a link into a busy channel does not inflate it.
"""

import re
from functools import lru_cache

# (pattern, reason), tried in order; the first match names the reason.
_KNOWN: tuple[tuple[str, str], ...] = (
    (r"Slackbot|Slack-ImgProxy|Slack/", "preview: Slack"),
    (r"WhatsApp", "preview: WhatsApp"),
    (r"Twitterbot", "preview: Twitter/X"),
    (r"Discordbot", "preview: Discord"),
    (r"TelegramBot", "preview: Telegram"),
    (r"facebookexternalhit|Facebot|meta-externalagent", "preview: Facebook"),
    (r"Mastodon|Pleroma|Akkoma|Misskey|Friendica|GoToSocial", "preview: fediverse"),
    (r"LinkedInBot", "preview: LinkedIn"),
    (r"redditbot", "preview: Reddit"),
    (r"Pinterest", "preview: Pinterest"),
    (r"SkypeUriPreview|MicrosoftPreview", "preview: Microsoft"),
    # In-app browsers (LINE, Viber, KakaoTalk) carry people, so only fetchers here.
    (r"Iframely|Embedly|vkShare|Snap URL Preview", "preview"),
    (r"Googlebot|Google-InspectionTool|AdsBot-Google|APIs-Google", "crawler: Google"),
    (r"bingbot|BingPreview", "crawler: Bing"),
    (r"Applebot", "crawler: Apple"),
    (r"YandexBot|Baiduspider|DuckDuckBot|Sogou|Exabot|SeznamBot", "crawler"),
    (r"GPTBot|ChatGPT-User|ClaudeBot|anthropic-ai|PerplexityBot|CCBot", "crawler: AI"),
    (r"HeadlessChrome|PhantomJS|Puppeteer|Playwright|Selenium", "headless browser"),
    (r"^curl/|^Wget/|^HTTPie/|^xh/", "command-line client"),
    (
        r"python-requests|python-urllib|python-httpx|aiohttp|Go-http-client|"
        r"okhttp|Java/|Apache-HttpClient|libwww-perl|node-fetch|axios|undici|"
        r"^Ruby|PHP/|Dart/|Scrapy|^wrk",
        "script",
    ),
    (r"bot\b|crawl|spider|slurp|preview|fetcher|monitor|checker", "bot"),
)
_PATTERNS = tuple((re.compile(pattern, re.IGNORECASE), why) for pattern, why in _KNOWN)


@lru_cache(maxsize=4096)
def classify(user_agent: str) -> str | None:
    """Return why `user_agent` is a bot, or None for what looks like a person."""
    if not user_agent.strip():
        return "empty user agent"
    for pattern, why in _PATTERNS:
        if pattern.search(user_agent):
            return why
    return None
