"""Network adapters: the SMTP/LMTP listener, the IMAP poller and the ``serve`` supervisor."""
