"""The web chat without an app (issue 18), bot side: links, the page's small JSON API, the throwaway accounts.

A patient opens a link (from a clinician's `!request link`, or the practice's poster); the page served here
redeems its single-use token for a Synapse registration token, registers a throwaway account, and the bot
opens the same encrypted chat as for any patient. When the submission is closed, or after the configured
period, the account is deactivated and erased. The contract with the page: docs/operator.md, "Web chat".
"""
