"""PushLab's public face: :mod:`pushlab.testing` (pytest fixtures for testing an app server
against fake APNs, fake FCM and simulated phones)."""
