"""Shared facts about code that rules read: names, module classes, mode guards."""
