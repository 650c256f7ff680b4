# Convenience targets over CMake (the build itself is CMake + Ninja).
BUILD ?= build

.PHONY: all test package clean
all:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD)

test:
	scripts/test.sh

# A .deb with the binary, the systemd unit and the example config in $(BUILD)/.
package: all
	cmake --build $(BUILD) --target package
	@ls -1 $(BUILD)/*.deb

clean:
	rm -rf $(BUILD)
