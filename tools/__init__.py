"""Host-side tools: craft, sign, inspect and publish image packages (imagetool, recipes, the lab
PKI), build the shipped images, audit an app's endpoints, and the February 2025 demo."""
