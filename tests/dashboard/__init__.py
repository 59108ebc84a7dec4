"""Tests of the SLA board and the web dashboard: pure rules, real HTTP, headless Chromium."""
