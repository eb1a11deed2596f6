"""Test file that is named as a command but installed without the execute permission."""
